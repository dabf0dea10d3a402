"""Build model_store/sentiment.mar with torch-model-archiver: `python -m serving.archive [--version 1.0]`.

The archive holds the TorchScript model, the tokenizer, the config, the handler and the plain-function modules
it imports, so the archive alone is enough to serve or to batch-score.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from model.infer import CONFIG_FILE, TOKENIZER_DIR, TORCHSCRIPT_FILE

logger = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "model" / "artifacts"
MODEL_MODULES = ("__init__.py", "config.py", "text.py", "infer.py")  # what the handler imports from model/
HANDLER_MODULES = ("__init__.py", "codec.py", "errors.py", "sentiment_handler.py")


def build(
    name: str,
    version: str,
    export_path: Path,
    artifacts: Path = ARTIFACTS,
    config_file: Path = ROOT / "model-config.yaml",
    handler_file: Path = ROOT / "handler" / "sentiment_handler.py",
) -> Path:
    """Write `export_path/name.mar`; the tests pass another model-config.yaml or a handler subclass."""
    with tempfile.TemporaryDirectory() as tmp:
        extra = Path(tmp) / "extra"
        for package, modules in (("model", MODEL_MODULES), ("handler", HANDLER_MODULES)):
            (extra / package).mkdir(parents=True)
            for module in modules:
                shutil.copy2(ROOT / package / module, extra / package / module)
        shutil.copy2(artifacts / CONFIG_FILE, extra / CONFIG_FILE)
        shutil.copytree(artifacts / TOKENIZER_DIR, extra / TOKENIZER_DIR)
        export_path.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                str(Path(sys.executable).parent / "torch-model-archiver"),
                "--model-name",
                name,
                "--version",
                version,
                "--serialized-file",
                str(artifacts / TORCHSCRIPT_FILE),
                "--handler",
                str(handler_file),
                "--extra-files",
                str(extra),
                "--config-file",
                str(config_file),
                "--export-path",
                str(export_path),
                "--force",
            ],
            check=True,
            # torch-model-archiver stages the files in $TMPDIR/<model name>, one fixed path per name: two builds
            # of "sentiment" at once (test runs side by side) would delete each other's files
            env={**os.environ, "TMPDIR": tmp},
        )
    path = export_path / f"{name}.mar"
    logger.info("wrote %s (%.1f MB), version %s", path, path.stat().st_size / 1e6, version)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--name", default="sentiment")
    parser.add_argument("--version", default="1.0")
    parser.add_argument("--export-path", type=Path, default=ROOT / "model_store")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    build(args.name, args.version, args.export_path)


if __name__ == "__main__":
    main()
