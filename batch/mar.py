"""The deployed .mar archive as the batch job's single source of model, tokenizer, version, limits and code.

The driver ships the archive to every executor (SparkContext.addFile) together with a zip of the Python code
(SparkContext.addPyFile): this package, plus the `model` and `handler` packages exactly as the archive holds
them. A Python worker unpacks the archive once into a local temporary directory and loads the scorer once.
"""

from __future__ import annotations

import atexit
import logging
import shutil
import tempfile
import zipfile
from pathlib import Path

from batch.errors import UsageError

logger = logging.getLogger(__name__)
CODE_PACKAGES = ("model", "handler")  # what the archive carries for its handler; the batch job imports the same

_unpacked: dict[tuple[str, int, float], Path] = {}
_loaded: dict[Path, tuple] = {}


def unpack(mar: Path) -> Path:
    """Unpack `mar` once per process into a temporary directory (removed when the process exits)."""
    mar = Path(mar)
    stat = mar.stat()
    cache_key = (str(mar.resolve()), stat.st_size, stat.st_mtime)
    if cache_key not in _unpacked:
        target = Path(tempfile.mkdtemp(prefix="sentiment-mar-"))
        atexit.register(shutil.rmtree, target, True)
        with zipfile.ZipFile(mar) as archive:
            archive.extractall(target)
        _unpacked[cache_key] = target
    return _unpacked[cache_key]


def load(mar: Path):
    """(Scorer, Limits) from the archive, loaded once per process with one torch thread."""
    directory = unpack(mar)
    if directory not in _loaded:
        from handler import settings
        from model.infer import limit_threads, load_scorer

        limit_threads(1)  # one Spark task per core; the archive's torch_threads is per TorchServe worker
        limits = settings.read(directory / settings.MODEL_CONFIG).limits  # the deployed handler's limits
        _loaded[directory] = (load_scorer(directory), limits)
        logger.info("loaded model version %s from %s", _loaded[directory][0].version, mar.name)
    return _loaded[directory]


def version(mar: Path) -> str:
    """The model version recorded in the archive's manifest, without loading the model."""
    import json

    with zipfile.ZipFile(mar) as archive:
        return json.loads(archive.read("MAR-INF/MANIFEST.json"))["model"]["modelVersion"]


def code_zip(mar: Path, target: Path) -> Path:
    """A zip for SparkContext.addPyFile: this package from here, `model` and `handler` from the archive."""
    batch_dir = Path(__file__).resolve().parent
    with zipfile.ZipFile(mar) as archive, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as out:
        for name in archive.namelist():
            if name.split("/", 1)[0] in CODE_PACKAGES and name.endswith(".py"):
                out.writestr(name, archive.read(name))
        for module in sorted(batch_dir.glob("*.py")):
            out.write(module, f"batch/{module.name}")
    missing = {f"{p}/__init__.py" for p in CODE_PACKAGES} - set(zipfile.ZipFile(target).namelist())
    if missing:
        raise UsageError(f"{mar} lacks {sorted(missing)}: rebuild it with `make archive`")
    return target
