"""Atomic output: the job writes into a hidden staging directory beside the target, renamed over it at the end.

A failed or killed run leaves the previous output untouched (the next run removes its stale staging
directory); a reader never sees a half-written or doubled output. The run holds the output's lock
(batch.lock) throughout, so that a second run cannot remove a live run's staging directory. This needs an
atomic directory rename (batch.storage.ATOMIC_RENAME: POSIX filesystems and HDFS). On object stores the job
writes into the output path itself, which must not exist yet, and summary.json, written last, says that it is
complete; a failed run's partial output is removed.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from batch import storage
from batch.errors import UsageError
from batch.lock import locked
from batch.storage import Storage

logger = logging.getLogger(__name__)
STAGING = ".{name}.staging-"
RETIRED = ".{name}.retired-"


def stale_siblings(fs: Storage, target: str) -> list[str]:
    """Staging or retired directories that an interrupted run of this target left behind."""
    name = storage.name(target)
    prefixes = (STAGING.format(name=name), RETIRED.format(name=name))
    parent = storage.parent(target)
    return [storage.child(parent, n) for n in fs.children(parent) if n.startswith(prefixes)]


def _recover(fs: Storage, target: str) -> None:
    """Put back an output retired by a run killed between its two renames; remove everything else stale."""
    prefix = RETIRED.format(name=storage.name(target))
    retired = [p for p in stale_siblings(fs, target) if storage.name(p).startswith(prefix)]
    if not fs.exists(target) and retired:
        newest = max(retired, key=fs.modified)
        logger.warning("restoring %s from %s", storage.name(target), storage.name(newest))
        fs.rename(newest, target)
    for stale in stale_siblings(fs, target):
        logger.warning("removing %s left by an interrupted run", storage.name(stale))
        fs.delete(stale)


@contextmanager
def staged(fs: Storage, target: str) -> Iterator[str]:
    """Yield the location to write the output to; on success it is the target, on failure it is removed."""
    target = storage.uri(target)
    with locked(fs, target):
        if not storage.renames_atomically(target):
            yield from _new_path(fs, target)
            return
        _recover(fs, target)
        staging = _sibling(target, STAGING)
        fs.mkdirs(staging)
        try:
            yield staging
        except BaseException:
            fs.delete(staging)
            raise
        retired = None
        if fs.exists(target):
            retired = _sibling(target, RETIRED)
            fs.rename(target, retired)
        fs.rename(staging, target)
        if retired is not None:
            fs.delete(retired)


def _sibling(target: str, prefix: str) -> str:
    return storage.child(storage.parent(target), prefix.format(name=storage.name(target)) + uuid.uuid4().hex[:12])


def _new_path(fs: Storage, target: str) -> Iterator[str]:
    if fs.exists(target):
        raise UsageError(
            f"{target} already exists: on {storage.scheme(target)}:// an output cannot be replaced atomically "
            "(no atomic rename), so each run writes to a new --output path"
        )
    try:
        yield target
    except BaseException:
        fs.delete(target)
        raise
