"""The local JVM's class-data-sharing archive: made by a real job's JVM, then mapped by a new one."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from batch import cds


def test_an_archive_is_made_by_a_run_and_mapped_by_the_next_jvm(mar_path, tmp_path):
    archive = tmp_path / "classes.jsa"
    assert cds.java_options(archive) == ""  # none yet: the JVM starts the slow way
    assert cds.create(mar_path, archive) == archive and archive.stat().st_size > 10 * 2**20
    assert cds.java_options(archive).startswith(f"-XX:SharedArchiveFile={archive} ")
    # -Xshare:on: a JVM that cannot map the archive refuses to start, so Spark's session would fail
    child = textwrap.dedent(
        f"""
        from batch.session import LOCAL_JVM, spark_session
        from batch.settings import SparkSettings
        options = LOCAL_JVM + " -XX:SharedArchiveFile={archive} -Xshare:on"
        spark, _ = spark_session(SparkSettings(master="local[1]", conf={{"spark.driver.extraJavaOptions": options}}))
        assert spark.range(5).count() == 5
        spark.stop()
        """
    )
    subprocess.run([sys.executable, "-c", child], check=True, timeout=300)


def test_an_archive_that_does_not_fit_is_ignored(tmp_path):
    bogus = tmp_path / "bogus.jsa"
    bogus.write_bytes(b"not an archive")
    child = textwrap.dedent(
        f"""
        from batch.session import LOCAL_JVM, spark_session
        from batch.settings import SparkSettings
        from batch import cds
        options = LOCAL_JVM + " " + cds.java_options(__import__("pathlib").Path("{bogus}"))
        spark, _ = spark_session(SparkSettings(master="local[1]", conf={{"spark.driver.extraJavaOptions": options}}))
        assert spark.range(5).count() == 5
        spark.stop()
        """
    )
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "cds" not in done.stdout.lower()  # quietly: no JVM warning on the console
