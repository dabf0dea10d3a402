"""Atomic output: everything is written into a hidden staging directory next to the target, then renamed.

A failed or killed run leaves the previous output untouched (the next run removes its stale staging
directory); a reader never sees a half-written or doubled output. Works on a local or shared POSIX filesystem,
where a directory rename is atomic.
"""

from __future__ import annotations

import logging
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

logger = logging.getLogger(__name__)
STAGING = ".{name}.staging-"
RETIRED = ".{name}.retired-"


def stale_siblings(target: Path) -> list[Path]:
    """Staging or retired directories that an interrupted run of this target left behind."""
    prefixes = (STAGING.format(name=target.name), RETIRED.format(name=target.name))
    return sorted(p for p in target.parent.glob(f".{target.name}.*") if p.name.startswith(prefixes))


def _recover(target: Path) -> None:
    """Put back an output retired by a run killed between its two renames; remove everything else stale."""
    retired = [p for p in stale_siblings(target) if p.name.startswith(RETIRED.format(name=target.name))]
    if not target.exists() and retired:
        newest = max(retired, key=lambda p: p.stat().st_mtime)
        logger.warning("restoring %s from %s", target.name, newest.name)
        newest.rename(target)
    for stale in stale_siblings(target):
        logger.warning("removing %s left by an interrupted run", stale.name)
        shutil.rmtree(stale, ignore_errors=True)


@contextmanager
def staged(target: Path) -> Iterator[Path]:
    """Yield a fresh staging directory; on success it replaces `target`, on failure it is removed."""
    target = Path(target).resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    _recover(target)
    staging = target.parent / (STAGING.format(name=target.name) + uuid.uuid4().hex[:12])
    staging.mkdir()
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    retired = None
    if target.exists():
        retired = target.parent / (RETIRED.format(name=target.name) + uuid.uuid4().hex[:12])
        target.rename(retired)
    staging.rename(target)
    if retired is not None:
        shutil.rmtree(retired, ignore_errors=True)
