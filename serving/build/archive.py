"""Build a model archive with torch-model-archiver: `python -m serving.build.archive [--name N] [--version V]`.

Two models are served, by the one handler: `sentiment` (model/artifacts) and `sentiment-bigram`, the stronger
phase-2 model of the two-phase cascade (model/artifacts_bigram). Both archives carry the same handler, codec,
limits and tokenizer; they differ in the TorchScript file (the handler loads the one MANIFEST.json names), the
config and the worker count.

Version 1.0 is model_store/sentiment.mar, the archive `make serve` and `make batch` use; any other version is
written beside it as model_store/sentiment_<version>.mar, to be registered and promoted
(`serving.client promote`) while 1.0 keeps serving. The archive holds the TorchScript model, the tokenizer,
the config, the handler and the plain-function modules it imports, so the archive alone is enough to serve or to
batch-score.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from model.baseline import BASELINE_FILE
from model.bigram_net import ARTIFACTS as BIGRAM_ARTIFACTS
from model.bigram_net import TORCHSCRIPT_FILE as BIGRAM_FILE
from model.bigram_net import file_sha256
from model.config import ARTIFACTS
from model.infer import CONFIG_FILE, TOKENIZER_DIR, TORCHSCRIPT_FILE
from model.platt import CALIBRATION_FILE

logger = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[2]
MODEL_MODULES = ("__init__.py", "config.py", "text.py", "logit.py", "infer.py")  # what the handler imports from model/
HANDLER_MODULES = (
    "__init__.py",
    "codec.py",
    "oip.py",
    "errors.py",
    "settings.py",
    "capture.py",
    "wire.py",
    "sentiment_handler.py",
)
DEFAULT_VERSION = "1.0"  # the version of sentiment.mar; the Makefile's BASE_VERSION says the same
TOKENIZER = ARTIFACTS / TOKENIZER_DIR  # the one tokenizer, trained with the sentiment model


@dataclass(frozen=True)
class ServedModel:
    artifacts: Path  # config.json and the TorchScript file
    serialized_file: str
    model_config: dict  # settings replaced in the shipped model-config.yaml (the handler's limits never are)


MODELS = {
    "sentiment": ServedModel(ARTIFACTS, TORCHSCRIPT_FILE, {}),
    # one worker: it sees only the reviews the device defers, and its two cores are sentiment's two workers'
    "sentiment-bigram": ServedModel(BIGRAM_ARTIFACTS, BIGRAM_FILE, {"minWorkers": 1, "maxWorkers": 1}),
}


def model_config_with(text: str, settings: dict) -> str:
    """A model-config.yaml's text with some top-level settings replaced; each must be there already."""
    out = text
    for name, value in settings.items():
        out, found = re.subn(rf"^{name}:\s*\S+", f"{name}: {value}", out, count=1, flags=re.M)
        if not found:
            raise ValueError(f"{name} is not a top-level setting of model-config.yaml")
    return out


def tokenizer_of(artifacts: Path) -> Path:
    """The tokenizer a model was trained with: its own, when training wrote one beside it (the sentiment model, and
    a retrained candidate with the vocabulary of its new data), else the one tokenizer (the phase-2 model, which
    records that tokenizer's digest in its config)."""
    own = artifacts / TOKENIZER_DIR
    return own if own.is_dir() else TOKENIZER


def check_tokenizer(artifacts: Path) -> None:
    """A model trained on other token ids than the tokenizer's would answer nonsense: refuse to archive it."""
    trained_with = json.loads((artifacts / CONFIG_FILE).read_text()).get("tokenizer_sha256")
    if trained_with and trained_with != file_sha256(tokenizer_of(artifacts) / "tokenizer.json"):
        raise RuntimeError(
            f"{artifacts} was trained with another {TOKENIZER / 'tokenizer.json'}: retrain it (make train-bigram)"
        )


def archive_name(name: str, version: str) -> str:
    """The archive's file name for a version: a new version never overwrites the archive being served.

    The Makefile's `archive_file` follows the same rule (tests/unit/test_versions.py holds them together)."""
    return f"{name}.mar" if version == DEFAULT_VERSION else f"{name}_{version}.mar"


def build(
    name: str,
    version: str,
    export_path: Path,
    artifacts: Path | None = None,
    config_file: Path = ROOT / "model-config.yaml",
    handler_file: Path = ROOT / "handler" / "sentiment_handler.py",
) -> Path:
    """Write `export_path/archive_name(name, version)` for a model of MODELS; the tests pass another
    model-config.yaml or a handler."""
    served = MODELS[name]
    artifacts = artifacts or served.artifacts
    check_tokenizer(artifacts)
    export_path.mkdir(parents=True, exist_ok=True)
    path = export_path / archive_name(name, version)
    # built beside its place and renamed into it: a server or batch job reading the old archive never sees half of
    # the new one, and torch-model-archiver's own file name (name.mar) never overwrites the served version
    with tempfile.TemporaryDirectory(dir=export_path, prefix=".archive-") as tmp:
        extra = Path(tmp) / "extra"
        for package, modules in (("model", MODEL_MODULES), ("handler", HANDLER_MODULES)):
            (extra / package).mkdir(parents=True)
            for module in modules:
                shutil.copy2(ROOT / package / module, extra / package / module)
        shutil.copy2(artifacts / CONFIG_FILE, extra / CONFIG_FILE)
        shutil.copytree(tokenizer_of(artifacts), extra / TOKENIZER_DIR)
        for evaluation_file in (BASELINE_FILE, CALIBRATION_FILE):  # what evaluation/ compares this version with
            if (artifacts / evaluation_file).exists():
                shutil.copy2(artifacts / evaluation_file, extra / evaluation_file)
            else:
                logger.warning("%s has no %s: `make baseline` writes it", artifacts, evaluation_file)
        if served.model_config:
            text = model_config_with(Path(config_file).read_text(), served.model_config)
            config_file = Path(tmp) / "model-config.yaml"
            config_file.write_text(text)
        built = Path(tmp) / "built"
        built.mkdir()
        subprocess.run(
            [
                str(Path(sys.executable).parent / "torch-model-archiver"),
                "--model-name",
                name,
                "--version",
                version,
                "--serialized-file",
                str(artifacts / served.serialized_file),
                "--handler",
                str(handler_file),
                "--extra-files",
                str(extra),
                "--config-file",
                str(config_file),
                "--export-path",
                str(built),
            ],
            check=True,
            # torch-model-archiver stages the files in $TMPDIR/<model name>, one fixed path per name: two builds
            # of "sentiment" at once (test runs side by side) would delete each other's files
            env={**os.environ, "TMPDIR": tmp},
        )
        (built / f"{name}.mar").replace(path)
    logger.info("wrote %s (%.1f MB), version %s", path, path.stat().st_size / 1e6, version)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--name", default="sentiment", choices=sorted(MODELS))
    parser.add_argument("--version", default=DEFAULT_VERSION, help="1.0: sentiment.mar; 2.0: sentiment_2.0.mar")
    parser.add_argument("--export-path", type=Path, default=ROOT / "model_store")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    build(args.name, args.version, args.export_path)


if __name__ == "__main__":
    main()
