"""The documented schedule works as written: `deploy/evaluate` exits with the evaluation's status (3 on a
critical alert, where `make evaluate` can only say 2), and docs/evaluation.md's cron line retrains only then."""

from __future__ import annotations

import re
import shlex
import subprocess

import pytest

from tests.conftest import ROOT

STRICT = "rules:\n  accuracy_floor: {level: critical, metric: accuracy, floor: 0.99}\n"
LENIENT = "rules:\n  accuracy_floor: {level: critical, metric: accuracy, floor: 0.10}\n"


def cron_line() -> str:
    """The command of the cron entry in docs/evaluation.md, as written."""
    [line] = re.findall(r"^15 2 \* \* \*  (.+)$", (ROOT / "docs" / "evaluation.md").read_text(), flags=re.M)
    return line


@pytest.mark.parametrize(("rules", "status"), [(STRICT, 3), (LENIENT, 0)])
def test_the_cron_line_retrains_only_on_a_critical_alert(traffic, tmp_path, rules, status):
    alerts = tmp_path / "alerts.yaml"
    alerts.write_text("min_labels: 30\nmin_predictions: 30\nmax_p: 0.01\n" + rules)
    root = traffic["root"]
    args = (f"--captures {root / 'captures'} --model-store {traffic['model_store']} --runs {tmp_path / 'runs'} "
            f"--alerts {alerts}")  # fmt: skip
    ours = f"FEEDBACK={shlex.quote(str(root / 'feedback'))} EVALUATE_ARGS={shlex.quote(args)}"
    marker = tmp_path / "retrained"
    line = cron_line()
    assert line.startswith("cd /srv/sentiment && deploy/evaluate WINDOW=1d;") and line.endswith("&& make retrain")
    # where the checkout is, our inputs after the documented ones, and a marker where the retrain would start
    command = (
        line.replace("cd /srv/sentiment", f"cd {shlex.quote(str(ROOT))}")
        .replace("WINDOW=1d;", f"WINDOW=1d {ours};")
        .replace("make retrain", f"touch {shlex.quote(str(marker))}")
    )
    subprocess.run(["bash", "-c", command], timeout=900, check=False, capture_output=True)
    assert marker.exists() == (status == 3)
    done = subprocess.run([str(ROOT / "deploy" / "evaluate"), "WINDOW=1d", *shlex.split(ours)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=900)  # fmt: skip
    assert done.returncode == status, done.stderr[-3000:]
    assert ("critical active: accuracy_floor" in done.stderr) == (status == 3)
