"""The local JVM's class-data-sharing archive: made by a real job's JVM, then mapped by a new one."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from pathlib import Path

from batch import cds


def _spark_in_a_child(java_options: str) -> subprocess.CompletedProcess:
    """Start a local SparkSession in a fresh process (a fresh JVM) with these JVM options and count to 5."""
    child = textwrap.dedent(
        f"""
        from batch.session import LOCAL_JVM, spark_session
        from batch.settings import SparkSettings
        options = LOCAL_JVM + " " + {java_options!r}
        spark, _ = spark_session(SparkSettings(master="local[1]", conf={{"spark.driver.extraJavaOptions": options}}))
        assert spark.range(5).count() == 5
        spark.stop()
        """
    )
    return subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=300)


def test_an_archive_is_made_by_a_run_and_mapped_by_the_next_jvm(mar_path, tmp_path, capfd, caplog):
    archive = tmp_path / "classes.jsa"
    assert cds.java_options(archive) == ""  # none yet: the JVM starts the slow way
    with caplog.at_level(logging.INFO, logger="batch.cds"):
        assert cds.create(mar_path, archive) == archive and archive.stat().st_size > 10 * 2**20
    # what the user sees: a warm-up, not a job of theirs with errors in it
    assert "warming up Spark's class-data archive (24 sample rows" in caplog.text
    child = capfd.readouterr()
    assert "24 rows:" not in child.err and "scoring" not in child.err, child.err[-2000:]
    assert cds.java_options(archive).startswith(f"-XX:SharedArchiveFile={archive} ")
    # -Xshare:on: a JVM that cannot map the archive refuses to start, so Spark's session would fail
    done = _spark_in_a_child(f"-XX:SharedArchiveFile={archive} -Xshare:on")
    assert done.returncode == 0, done.stderr[-2000:]


def test_an_archive_that_does_not_fit_is_ignored(tmp_path: Path):
    bogus = tmp_path / "bogus.jsa"
    bogus.write_bytes(b"not an archive")
    done = _spark_in_a_child(cds.java_options(bogus))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "cds" not in done.stdout.lower()  # quietly: no JVM warning on the console
