"""The Makefile's own promises: every declared target exists, and the Java check asks for what Spark 4 needs."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from tests.conftest import MAKE_ENV, ROOT

MAKEFILE = (ROOT / "Makefile").read_text()


def test_every_phony_target_has_a_rule():
    declared = {name for line in re.findall(r"^\.PHONY:(.*)$", MAKEFILE, re.M) for name in line.split()}
    defined = set(re.findall(r"^([a-zA-Z_-]+):", MAKEFILE, re.M))
    assert "integration" in declared and declared <= defined, sorted(declared - defined)


def test_make_integration_runs_the_integration_tests_only():
    done = subprocess.run(
        [
            "make",
            "-n",
            "--no-print-directory",
            "-o",
            ".venv/.dev-installed",
            "-o",
            "java",
            "-o",
            "model_store/sentiment.mar",
            "integration",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env=MAKE_ENV,
    )
    assert done.stdout.strip().endswith("-m pytest tests/integration")


def _make_java(tmp_path, version_line: str) -> subprocess.CompletedProcess:
    """`make java` with a `java` on PATH that reports `version_line`, as `java -version` does (on stderr)."""
    fake = tmp_path / "java"
    fake.write_text(f"#!/bin/sh\necho '{version_line}' >&2\n")
    fake.chmod(0o755)
    env = {**MAKE_ENV, "PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(["make", "-s", "java"], cwd=ROOT, env=env, capture_output=True, text=True)


@pytest.mark.parametrize("version", ["11.0.2", "1.8.0_392"])
def test_java_before_17_is_refused_in_words(tmp_path, version):
    done = _make_java(tmp_path, f'openjdk version "{version}" 2019-01-15')
    assert done.returncode != 0
    assert done.stdout.startswith(f"TorchServe and Spark need Java 17 or later, found {version}")


@pytest.mark.parametrize("version", ["17.0.15", "21.0.2"])
def test_java_17_or_later_passes(tmp_path, version):
    done = _make_java(tmp_path, f'openjdk version "{version}" 2025-04-15')
    assert (done.returncode, done.stdout) == (0, "")


def _make_n(*args: str) -> str:
    """What `make -n` would run, the prerequisites that start servers or install packages taken as done."""
    done = subprocess.run(
        ["make", "-n", "--no-print-directory", "-o", "java", "-o", "nginx", "-o", "model_store/sentiment.mar", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env=MAKE_ENV,
    )
    return done.stdout


def test_fleet_port_is_a_variable_and_free_by_default():
    assert _make_n("-o", ".venv/.installed", "fleet", "FLEET_PORT=9123").strip().endswith("--replicas 3 --port 9123")
    assert _make_n("-o", ".venv/.installed", "fleet").strip().endswith("--replicas 3")


def test_batch_installs_the_batch_requirements_only():
    ran = _make_n("-W", "requirements-batch.txt", "-o", ".venv/.installed", "batch", "INPUT=a.jsonl", "OUTPUT=out")
    assert "-r requirements-batch.txt" in ran and "requirements-dev.txt" not in ran
    assert ran.strip().endswith("-m batch --input a.jsonl --output out --mar model_store/sentiment.mar")


def test_serve_says_each_install_step_and_lets_pip_show_its_progress():
    ran = _make_n(
        "-W", "requirements.txt", "-o", "model_store/sentiment-bigram.mar", "-o", "dist/edge/settings.json", "serve"
    )
    install = next(line for line in ran.splitlines() if "pip install" in line)
    assert "--quiet" not in install and "-r requirements.txt" in install
    assert "==> installing the serving packages" in ran
    assert ran.strip().endswith("-m serving.run.server start")


def test_help_prints_no_make_variable_unexpanded():
    done = subprocess.run(["make", "-s", "help"], cwd=ROOT, env=MAKE_ENV, capture_output=True, text=True, check=True)
    assert "$(" not in done.stdout and "make web-stop" in done.stdout, done.stdout
