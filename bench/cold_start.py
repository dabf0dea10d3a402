"""Cold start: `torchserve --start` to the first successful prediction, and `make serve` from a fresh clone."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from serving.run.server import ROOT, launch, loopback_properties, write_properties

logger = logging.getLogger(__name__)


def torchserve_start(workdir: Path, mar: Path, repeats: int = 3) -> dict:
    """Seconds from `torchserve --start` to the first 200 prediction, median of `repeats` fresh starts."""
    cells = []
    for i in range(repeats):
        server = launch(workdir / f"start-{i}", mar)
        cells.append(server.started_in_s)
        server.stop()
    return {"median_s": statistics.median(cells), "cells_s": [round(c, 2) for c in cells]}


def make_serve_from_clone(workdir: Path) -> dict:
    """`make serve` in a fresh clone of the committed tree with a ready venv (this checkout's .venv).

    Includes building both .mar files and the device bundle (a clone has none) and waiting for both models to
    answer."""
    clone = workdir / "clone"
    shutil.rmtree(clone, ignore_errors=True)
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    (clone / ".venv").symlink_to(ROOT / ".venv")
    stamp = (ROOT / ".venv" / ".installed").stat().st_mtime
    for requirement in clone.glob("requirements*.txt"):  # the venv is ready: it is older than nothing it needs
        os.utime(requirement, (stamp - 60, stamp - 60))
    config = clone / "config.properties"  # off the reserved 8080-8082 / 7070-7071, onto free ports
    write_properties(config, loopback_properties(clone / "model_store"), config)
    log = workdir / "make-serve.log"
    began = time.monotonic()
    try:
        with log.open("wb") as out:  # a file, not a pipe: the server make starts keeps its output open
            subprocess.run(["make", "serve"], cwd=clone, check=True, stdout=out, stderr=out, timeout=900)
        total = time.monotonic() - began
    finally:
        subprocess.run(["make", "stop"], cwd=clone, check=False, capture_output=True, timeout=120)
    includes = "both archives and the device bundle built (a clone has none), torchserve start, first 200 of each model"
    return {"total_s": round(total, 2), "includes": includes}


def main(argv: list[str] | None = None) -> int:
    """Re-measure `make serve` from a clone alone and store it in a results file."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "results" / "latest.json")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    work = ROOT / "bench" / "tmp" / time.strftime("clone-%Y%m%d-%H%M%S")
    work.mkdir(parents=True)
    cells = [make_serve_from_clone(work)["total_s"] for _ in range(args.repeats)]
    results = json.loads(args.results.read_text())
    results["cold_start"]["make_serve_from_clone"] = {
        "median_s": statistics.median(cells),
        "cells_s": cells,
        "includes": "archive build (a clone has no .mar), torchserve start, first 200",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    args.results.write_text(json.dumps(results, indent=2) + "\n")
    shutil.rmtree(work, ignore_errors=True)
    print(results["cold_start"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
