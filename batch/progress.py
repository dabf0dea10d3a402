"""Progress while the job runs: a thread that logs Spark's task counts (Spark's console bar shows them too)."""

from __future__ import annotations

import logging
import threading

from pyspark import SparkContext

logger = logging.getLogger(__name__)


def stage_line(sc: SparkContext) -> str | None:
    """'stage 3: 5/8 tasks done, 2 running' for each active stage, or None when nothing runs."""
    tracker = sc.statusTracker()
    parts = []
    for stage_id in sorted(tracker.getActiveStageIds()):
        info = tracker.getStageInfo(stage_id)
        if info is not None:
            parts.append(
                f"stage {stage_id}: {info.numCompletedTasks}/{info.numTasks} tasks done, {info.numActiveTasks} running"
            )
    return "; ".join(parts) or None


class Progress:
    """Context manager: logs the active stages every `every` seconds until the block ends."""

    def __init__(self, sc: SparkContext, every: float = 5.0) -> None:
        self.sc, self.every = sc, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="batch-progress", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                line = stage_line(self.sc)
            except Exception:  # noqa: BLE001 - progress must never break the job (e.g. while Spark stops)
                return
            if line:
                logger.info("progress: %s", line)

    def __enter__(self) -> Progress:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=self.every + 1)
