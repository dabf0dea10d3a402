"""What the evaluation knows of each model version: the baseline and calibration its own archive ships.

Archives are found in the model store by their own MANIFEST (any file name); a version without an archive, or an
archive without baseline.json, is evaluated without drift and without the calibrated estimate (said in the report).
"""

from __future__ import annotations

import json
import logging
import zipfile
from pathlib import Path

from evaluation.reference import ArchiveReference
from model.baseline import BASELINE_FILE
from model.platt import CALIBRATION_FILE, Calibration

logger = logging.getLogger(__name__)
MANIFEST = "MAR-INF/MANIFEST.json"


def archives(model_store: Path, name: str | None = None) -> dict[tuple[str, str], Path]:
    """(model name, version) -> archive in `model_store`, of every model or of model `name`."""
    out = {}
    for path in sorted(Path(model_store).glob("*.mar")):
        try:
            with zipfile.ZipFile(path) as z:
                manifest = json.loads(z.read(MANIFEST))["model"]
        except (OSError, KeyError, ValueError, zipfile.BadZipFile):
            logger.warning("%s is not a readable model archive; skipped", path)
            continue
        if name is None or manifest.get("modelName") == name:
            out[(manifest["modelName"], manifest["modelVersion"])] = path
    return out


def read(archive: Path) -> ArchiveReference:
    with zipfile.ZipFile(archive) as z:
        names = set(z.namelist())
        baseline = json.loads(z.read(BASELINE_FILE)) if BASELINE_FILE in names else None
        calibration = Calibration(**json.loads(z.read(CALIBRATION_FILE))) if CALIBRATION_FILE in names else None
    return ArchiveReference(baseline, calibration)


def load(model_store: Path, name: str | None = None) -> dict[tuple[str, str], ArchiveReference]:
    """Each model version's baseline and calibration, from its own archive."""
    return {model: read(path) for model, path in archives(model_store, name).items()}
