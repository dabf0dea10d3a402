"""Every command of README.md and docs/ that a user would paste runs as the text says, and prints what the text
claims.

The docs are read when the tests run. Every line of a `bash` block and every `python` block is either run here
(RUN names the test that runs it) or excused with the reason it cannot run in CI (EXCUSED); a new command in the
docs that is in neither, or an entry that no longer matches a command, fails test_every_documented_command_is_
run_or_excused. So a command changed in the docs is run as changed, and a claim changed without the product (or
the reverse) fails.

Where they run: a fresh copy of the repository (its files as they are in the working tree, the archives and
device bundle `make test` built, a link to `.venv`), with the data at `../shared/data` beside it as for a clone.
`make serve` is run in it and every command after it is run there, the way the docs say, with bash.

The one substitution, in the copy's config.properties and in each command: TorchServe's ports 8080, 8081,
8082, 7070 and 7071 become free loopback ports (never the machine's own server's). Commands that reach the
server on those ports without naming them (`serving.client`, `edge predict`) get the free ones named with
their documented options (`--inference-url`/`--management-url`, `--server`). Tokens are not substituted: the
commands read them from the key_file.json that `make serve` writes in the copy.

The tests of this module run in order on one server: the version procedure before the management commands.
"""

from __future__ import annotations

import gzip
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

import serving.run.server
from model.data import DATA_DIR
from tests.conftest import BIGRAM_MAR, BOOK_REVIEWS, EDGE_BUNDLE, MAKE_ENV, MAR, ROOT

DOCS = ("README.md", *sorted(f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md")))
COMMAND_LANGUAGES = ("bash", "sh", "shell", "python")
DEFAULT_PORTS = (8080, 8081, 8082, 7070, 7071)  # config.properties: inference, management, metrics, gRPC x2
FLOAT_TOLERANCE = 1e-6  # the docs show answers as the server printed them; another CPU may differ in the last bits

# (doc, a string the command holds) -> the test that runs it
RUN = {
    ("README.md", "make serve"): "the fixture `served`; test_make_serve_says_what_it_does_and_opens_its_ports",
    ("README.md", "TOKEN=$(python3"): "test_readme_first_prediction",
    ("README.md", "curl -s http://127.0.0.1:8080/predictions/sentiment"): "test_readme_first_prediction",
    ("README.md", "make edge"): "test_edge_predict_online_then_offline",
    ("README.md", "-m edge predict"): "test_edge_predict_online_then_offline",
    ("README.md", "-m evaluation label"): "test_label_then_evaluate",
    ("README.md", "make evaluate"): "test_label_then_evaluate",
    ("README.md", "make batch INPUT=reviews.jsonl.gz"): "test_readme_batch",
    ("docs/api.md", "TOKEN=$(python3"): "test_api_curls",
    ("docs/api.md", "curl -s http://127.0.0.1:8080/predictions/sentiment"): "test_api_curls",
    ("docs/api.md", "curl -s http://127.0.0.1:8080/v2/models/sentiment/infer"): "test_open_inference_curl",
    ("docs/api.md", "import tritonclient.http"): "test_open_inference_python_client",
    ("docs/api.md", "-m serving.client predict"): "test_api_python_client",
    ("docs/api.md", "-m serving.client --help"): "test_api_python_client",
    ("docs/operations.md", "make archive VERSION=2.0"): "test_version_procedure",
    ("docs/operations.md", "-m serving.client promote"): "test_version_procedure",
    ("docs/operations.md", "-m serving.client rollback"): "test_version_procedure",
    ("docs/operations.md", "-m serving.client list"): "test_management_commands",
    ("docs/operations.md", "-m serving.client describe"): "test_management_commands",
    ("docs/operations.md", "-m serving.client scale"): "test_management_commands",
    ("docs/operations.md", "-m serving.client register"): "test_management_commands",
    ("docs/operations.md", "-m serving.client set-default"): "test_management_commands",
    ("docs/operations.md", "-m serving.client unregister"): "test_management_commands",
    ("docs/operations.md", "MTOKEN=$(python3"): "test_management_commands",
    ("docs/operations.md", 'curl -s -X PUT "http://127.0.0.1:8081'): "test_management_commands",
    ("docs/performance.md", "curl -s http://127.0.0.1:8082/metrics"): "test_metrics_curl",
    ("docs/performance.md", "-m bench.report"): "test_bench_report",
    ("docs/two-phase.md", "make edge"): "test_edge_predict_online_then_offline (the same command as README's)",
    ("docs/two-phase.md", "make serve"): "the fixture `served`",
    ("docs/two-phase.md", "-m edge predict"): "test_edge_predict_online_then_offline (the same command as README's)",
    ("docs/two-phase.md", "from edge.cascade import"): "test_two_phase_python",
    ("docs/batch.md", "make batch INPUT=../shared/data/imdb/unsup.jsonl.gz"): "test_batch_commands",
    ("docs/batch.md", "make batch INPUT=reviews.csv"): "test_batch_commands",
    ("docs/batch.md", "-m batch --help"): "test_batch_commands",
    ("docs/batch.md", "PYTHONPATH=. .venv/bin/python sentiment_sql.py"): "test_sql_snippet",
    ("docs/batch.md", "from batch.udf import register_sql_function"): "test_sql_snippet",
}
CLUSTER = "starts a standalone Spark master and worker in the background on fixed ports (7077, 8090, 8091); "
CLUSTER += "tests/batch/test_cluster.py starts the same on free loopback ports and compares its output with local's"
FLEET = "starts three more TorchServes behind nginx: too much beside this module's server on CI's two cores; "
FLEET += "tests/integration/test_fleet.py runs serving.fleet's start, status, promote, rollback and scale "
FLEET += "on free ports"
BENCH = "a benchmark (minutes, and meaningless on a loaded machine); bench/ has its own tiny-size checks"
EXCUSED = {
    ("README.md", "make test"): "this suite itself",
    ("README.md", "make web"): "serves the page in the foreground until stopped; tests/integration/test_browser.py "
    "drives the same page in Chromium against a real TorchServe",
    ("README.md", "make retrain"): "trains a candidate model for minutes on labeled traffic; tests/evaluation "
    "and test_evaluation_story.py run the gate and the promotion",
    ("README.md", "make batch INPUT=../shared/data/imdb/unsup.jsonl.gz"): "batch.md's first command, the same "
    "but for its output directory, run by test_batch_commands",
    ("docs/batch.md", "SPARK_HOME=$("): CLUSTER,
    ("docs/batch.md", "export SPARK_LOCAL_IP"): CLUSTER,
    ("docs/batch.md", "spark-class org.apache.spark.deploy"): CLUSTER,
    ("docs/batch.md", "--master spark://"): CLUSTER,
    ("docs/fleet.md", "make fleet"): FLEET,
    ("docs/fleet.md", "curl -s http://127.0.0.1:8088/"): FLEET,
    ("docs/fleet.md", "-m serving.fleet"): FLEET,
    ("docs/fleet.md", "podman "): "no container runtime in CI; tests/unit validates deploy/ against the schemas",
    ("docs/performance.md", "make bench"): BENCH,
    ("docs/performance.md", "-m bench.profile"): BENCH,
    ("docs/two-phase.md", "make two-phase-report"): BENCH,
    ("docs/two-phase.md", "-m evaluation run --captures captures/model=sentiment-bigram"): "the evaluation job "
    "of `make evaluate` (test_label_then_evaluate runs it, minutes on CI's cores); tests/evaluation/test_audit.py "
    "runs it on sentiment-bigram's audited captures",
    ("docs/two-phase.md", "make train"): "retrains both models (minutes) and rewrites the committed artifacts",
    ("docs/two-phase.md", "make calibrate"): "part of that retraining (the line above): reads the data for minutes",
    ("docs/two-phase.md", "make archive archive-bigram edge"): "the end of that retraining (the lines above)",
}


# -- the docs' blocks ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Block:
    doc: str
    line: int  # of the opening fence
    language: str
    text: str

    def commands(self) -> list[str]:
        """A shell block's commands (continued lines joined, comments and blank lines left out); a Python block is
        one command."""
        if self.language == "python":
            return [self.text]
        joined = re.sub(r"\\\n\s*", " ", self.text)
        commands, pending = [], ""
        for line in joined.splitlines():
            if not pending:  # a comment, unless inside a quoted body that spans lines
                line = re.sub(r"(^|\s+)#\s.*$", "", line)
            pending += ("\n" if pending else "") + line
            if pending.count("'") % 2 == 0:
                commands.append(pending.strip())
                pending = ""
        return [c for c in [*commands, pending.strip()] if c]


def read_blocks(doc: str) -> list[Block]:
    blocks, opened, lines = [], None, []
    for number, line in enumerate((ROOT / doc).read_text().splitlines(), 1):
        fence = re.match(r"^```(\S*)\s*$", line)
        if fence and opened is None:
            opened, lines = (number, fence.group(1)), []
        elif fence:
            blocks.append(Block(doc, opened[0], opened[1], "\n".join(lines) + "\n"))
            opened = None
        elif opened is not None:
            lines.append(line)
    return blocks


def block(doc: str, holding: str) -> Block:
    """The one block of `doc` with a command holding `holding` (comments do not count)."""
    found = [b for b in read_blocks(doc) if any(holding in c for c in b.commands())]
    assert len(found) == 1, f"{doc}: {len(found)} blocks hold {holding!r}"
    return found[0]


def shown_after(first: Block, count: int, language: str = "json") -> list[str]:
    """The texts of the `count` `language` blocks that follow `first` in its doc: what the doc shows it prints."""
    after = [b for b in read_blocks(first.doc) if b.line > first.line]
    shown = [b.text for b in after[:count] if b.language == language]
    assert len(shown) == count, f"{first.doc}:{first.line} is not followed by {count} {language} blocks"
    return shown


def entry_for(doc: str, command: str) -> list[tuple[str, str]]:
    return [(d, holding) for (d, holding) in (*RUN, *EXCUSED) if d == doc and holding in command]


def test_every_documented_command_is_run_or_excused():
    commands = [
        (b.doc, c) for doc in DOCS for b in read_blocks(doc) if b.language in COMMAND_LANGUAGES for c in b.commands()
    ]
    unaccounted = [f"{doc}: {c[:100]}" for doc, c in commands if not entry_for(doc, c)]
    ambiguous = [f"{doc}: {c[:100]}" for doc, c in commands if len(entry_for(doc, c)) > 1]
    stale = [entry for entry in (*RUN, *EXCUSED) if not any(d == entry[0] and entry[1] in c for d, c in commands)]
    assert not unaccounted, f"commands neither run nor excused: {unaccounted}"
    assert not ambiguous, f"commands matched by two entries: {ambiguous}"
    assert not stale, f"entries matching no documented command: {stale}"


# -- the fresh copy and its server ----------------------------------------------------------------------------
@dataclass
class Clone:
    root: Path
    ports: dict[int, int]  # documented port -> the free one this run uses
    served: subprocess.CompletedProcess | None = None

    def url(self, port: int = 8080) -> str:
        return f"http://127.0.0.1:{self.ports[port]}"

    def localised(self, command: str, server: str | None = None) -> str:
        """The command with the documented ports moved to this run's (the module docstring's substitution)."""
        for documented, port in self.ports.items():
            command = command.replace(f"127.0.0.1:{documented}", f"127.0.0.1:{port}")
        urls = f"--inference-url {self.url(8080)} --management-url {self.url(8081)}"
        command = re.sub(r"-m serving\.client(?=\s)", f"-m serving.client {urls}", command)
        return re.sub(r"-m edge predict(?=\s)", f"-m edge predict --server {server or self.url()}", command)

    def sh(self, script: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
        """Run `script` with bash in the copy's root, as a user would paste it (stopping at the first failure)."""
        env = {k: v for k, v in MAKE_ENV.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        done = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", script],
            cwd=self.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check:
            assert done.returncode == 0, (
                f"{script}\nexit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
            )
        return done

    def run(self, doc: str, holding: str, server: str | None = None, **kwargs) -> subprocess.CompletedProcess:
        """The whole shell block of `doc` holding `holding`, localised."""
        return self.sh(self.localised(block(doc, holding).text, server), **kwargs)


def fresh_copy(base: Path) -> Path:
    """The working tree's files (tracked and new, not ignored) and the built archives and bundle, mtimes kept so
    that make finds them up to date, with .venv linked and the data at ../shared/data as beside a clone."""
    repo = base / "sentiment"
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    built = [p.relative_to(ROOT).as_posix() for p in (MAR, BIGRAM_MAR, *EDGE_BUNDLE.rglob("*")) if p.is_file()]
    for relative in {*filter(None, listed.split("\0")), *built}:
        source = ROOT / relative
        if source.is_file():  # a tracked file deleted in the working tree is not in a clone either
            (repo / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, repo / relative)
    (repo / ".venv").symlink_to((ROOT / ".venv").resolve())
    (base / "shared").mkdir()
    if DATA_DIR.exists():
        (base / "shared" / "data").symlink_to(DATA_DIR.resolve())
    return repo


def with_ports(properties: str, ports: dict[int, int]) -> str:
    for documented, port in ports.items():
        properties = re.sub(rf"(?<=[:=]){documented}\b", str(port), properties)
    return properties


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[Clone]:
    """`make serve` in a fresh copy whose config.properties has free loopback ports; `make stop` at the end."""
    repo = fresh_copy(tmp_path_factory.mktemp("documented"))
    clone = Clone(repo, dict(zip(DEFAULT_PORTS, serving.run.server.free_ports(len(DEFAULT_PORTS)), strict=True)))
    config = repo / "config.properties"
    config.write_text(with_ports(config.read_text(), clone.ports))
    try:
        clone.served = clone.sh("make serve", timeout=600)
        yield clone
    finally:
        stopped = clone.sh("make stop", timeout=120, check=False)
        serving.run.server.stop(repo)  # nothing left to stop when `make stop` worked
        assert stopped.returncode == 0, stopped.stderr


def needs_data() -> None:
    if not DATA_DIR.exists():
        pytest.skip(f"the documented command reads the shared data, absent here ({DATA_DIR})")


def same_answer(got: object, shown: object, where: str = "") -> None:
    """The answer the doc shows: the same fields in the same order, the same values, floats within rounding."""
    if isinstance(shown, dict):
        assert isinstance(got, dict) and list(got) == list(shown), f"{where}: {got} != {shown}"
        for field, value in shown.items():
            same_answer(got[field], value, f"{where}.{field}")
    elif isinstance(shown, list):
        assert isinstance(got, list) and len(got) == len(shown), where
        for i, (g, s) in enumerate(zip(got, shown, strict=True)):
            same_answer(g, s, f"{where}[{i}]")
    elif isinstance(shown, float):
        assert got == pytest.approx(shown, abs=FLOAT_TOLERANCE), where
    else:
        assert got == shown, where


def json_values(text: str) -> list[object]:
    """The JSON values printed one after the other (curl -s prints no newline between answers)."""
    decoder, values, at = json.JSONDecoder(), [], 0
    text = text.strip()
    while at < len(text):
        value, at = decoder.raw_decode(text, at)
        values.append(value)
        while at < len(text) and text[at].isspace():
            at += 1
    return values


# -- README ---------------------------------------------------------------------------------------------------
def test_make_serve_says_what_it_does_and_opens_its_ports(served):
    out = served.served.stdout
    assert "==> starting TorchServe" in out
    assert "TorchServe is serving sentiment, sentiment-bigram" in out
    # README: "It opens five ports, all on 127.0.0.1 (`config.properties`): 8080 inference, ..."
    readme = " ".join((ROOT / "README.md").read_text().split())
    claim = re.search(r"It opens (\w+) ports, all on 127\.0\.0\.1 \(`config\.properties`\): (.*?)\. ", readme)
    assert claim, "README no longer says which ports make serve opens"
    documented = {int(p) for p in re.findall(r"\b(\d{4})\b", claim.group(2))}
    assert documented == set(DEFAULT_PORTS)
    assert claim.group(1) == {3: "three", 4: "four", 5: "five"}.get(len(documented))
    frontend = psutil.Process(serving.run.server.server_pid(served.root))
    listening = {
        (c.laddr.ip.removeprefix("::ffff:"), c.laddr.port)
        for c in frontend.net_connections("inet")
        if c.status == psutil.CONN_LISTEN
    }
    assert listening == {("127.0.0.1", served.ports[p]) for p in documented}
    # the curl it prints answers
    curl = next(line.strip() for line in out.splitlines() if line.strip().startswith("curl "))
    answer = json.loads(served.sh(curl).stdout)
    assert (answer["key"], answer["label"]) == ("review-1", "positive")


def test_readme_first_prediction(served):
    curl = block("README.md", "TOKEN=$(python3")
    (shown,) = shown_after(curl, 1)
    got = json.loads(served.run("README.md", "TOKEN=$(python3").stdout)
    same_answer(got, json.loads(shown), "README's answer")


def test_readme_request_without_a_token_gets_torchserves_body(served):
    """README's error section: no token -> TorchServe's own 400 body, pretty-printed, exactly as shown."""
    readme = (ROOT / "README.md").read_text()
    shown = re.search(r"```json\n(\{\n\s+\"code\": 400,.*?\n\})\n```", readme, re.S)
    assert shown, "README no longer shows the body of a request without a token"
    curl = block("README.md", "TOKEN=$(python3").text
    without_token = re.sub(r'-H "Authorization: Bearer \$TOKEN" ', "", curl.split("\n", 1)[1])
    assert "Authorization" not in without_token
    done = served.sh(served.localised(without_token.replace("curl -s", "curl -s -w '\\n%{http_code}'")))
    body, status = done.stdout.rsplit("\n", 1)
    assert status == "400"
    assert body.strip() == shown.group(1)


# -- docs/api.md ----------------------------------------------------------------------------------------------
def test_api_curls(served):
    token = block("docs/api.md", "TOKEN=$(python3")
    curls = block("docs/api.md", "curl -s http://127.0.0.1:8080/predictions/sentiment")
    shown = [json.loads(text) for text in shown_after(curls, 3)]
    got = json_values(served.sh(served.localised(token.text + curls.text)).stdout)
    assert len(got) == 3
    for i, (answer, expected) in enumerate(zip(got, shown, strict=True)):
        same_answer(answer, expected, f"api.md's answer {i + 1}")


def test_api_python_client(served):
    done = served.run("docs/api.md", "-m serving.client predict")
    first, second = (v for v in json_values(done.stdout.split("usage:")[0]))
    assert first["key"] == "r1" and first["label"] == "positive"
    assert [p["label"] for p in second] == ["positive", "negative"]  # one answer per text, in order
    assert "usage:" in done.stdout and "promote" in done.stdout  # --help: every command


def test_open_inference_curl(served):
    token = block("docs/api.md", "TOKEN=$(python3")
    curl = block("docs/api.md", "curl -s http://127.0.0.1:8080/v2/models/sentiment/infer")
    (shown,) = shown_after(curl, 1)
    got = json.loads(served.sh(served.localised(token.text + curl.text)).stdout)
    same_answer(got, json.loads(shown), "api.md's Open Inference answer")


def test_open_inference_python_client(served):
    """api.md's tritonclient snippet, run as a file from the repo root (it reads the token from key_file.json, as
    a user's would). It prints what its last comment shows."""
    snippet = block("docs/api.md", "import tritonclient.http")
    (served.root / "oip_client.py").write_text(served.localised(snippet.text))
    printed = served.sh(".venv/bin/python oip_client.py").stdout.strip()
    shown = snippet.text.strip().splitlines()[-1].lstrip("# ")
    number = r"-?\d+\.\d*(?:e-?\d+)?"
    values = [float(x) for x in re.findall(number, printed)]
    assert values == pytest.approx([float(x) for x in re.findall(number, shown)], abs=FLOAT_TOLERANCE)
    assert re.findall(r"'(\w+)'", printed) == re.findall(r"'(\w+)'", shown)


# -- docs/operations.md -------------------------------------------------------------------------------------
def test_version_procedure(served):
    done = served.run("docs/operations.md", "make archive VERSION=2.0", timeout=600)
    assert (served.root / "model_store" / "sentiment_2.0.mar").exists()
    lines = done.stdout.strip().splitlines()
    promoted, rolled_back = lines[-2], lines[-1]
    assert "2.0" in promoted, done.stdout
    assert "1.0" in rolled_back, done.stdout
    described = json.loads(served.sh(served.localised(".venv/bin/python -m serving.client describe sentiment")).stdout)
    assert [m["modelVersion"] for m in described] == ["1.0"]


def test_management_commands(served):
    done = served.run("docs/operations.md", "-m serving.client list", timeout=600)
    assert "sentiment" in done.stdout
    after = json.loads(served.sh(served.localised(".venv/bin/python -m serving.client describe sentiment")).stdout)
    assert {m["modelVersion"] for m in after} == {"1.0"}  # the block unregisters the 2.0 it registered


# -- docs/performance.md ------------------------------------------------------------------------------------
def test_metrics_curl(served):
    done = served.run("docs/performance.md", "curl -s http://127.0.0.1:8082/metrics")
    names = {line.split("{")[0] for line in done.stdout.splitlines()}
    assert names == {"TokenizeTime_sum", "TokenizeTime_count", "ForwardTime_sum", "ForwardTime_count"}


def test_bench_report(served):
    commands = {c for b in read_blocks("docs/performance.md") for c in b.commands() if "-m bench.report" in c}
    assert commands
    for command in commands:  # the same command in two blocks: each as written
        assert served.sh(command).stdout.strip()


# -- two-phase prediction -----------------------------------------------------------------------------------
EDGE_REVIEWS = [
    *BOOK_REVIEWS.values(),
    "It was a film.",
    "Some parts worked, some did not.",
    "I watched it on a Tuesday with my brother.",
    "An absolute masterpiece, wonderful acting and a moving story. I loved every minute.",
    "The worst film I have ever seen, boring and stupid.",
    "",
]


def test_edge_predict_online_then_offline(served):
    """README: each line gets one answer in order with `phase` and `provisional`; the server unreachable, the
    device answers everything and only the answers that needed the server are provisional."""
    lines = [{"key": f"r{i}", "text": text} for i, text in enumerate(EDGE_REVIEWS)]
    (served.root / "reviews.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    online = served.run("README.md", "-m edge predict")
    answers = [json.loads(line) for line in (served.root / "answers.jsonl").read_text().splitlines()]
    assert [a.get("key") for a in answers] == [line["key"] for line in lines]
    assert answers[-1]["error"]["code"] == "empty_text"
    deferred = {a["key"] for a in answers if a.get("phase") == 2}
    assert deferred, "no review went to phase 2: the test's reviews no longer exercise the server"
    assert not any(a["provisional"] for a in answers)
    counts = re.search(r"(\d+) answers: (\d+) by the device, (\d+) by the server, (\d+) provisional", online.stderr)
    assert counts and tuple(map(int, counts.groups())) == (len(lines), len(lines) - 1 - len(deferred), len(deferred), 0)

    unreachable = f"http://127.0.0.1:{serving.run.server.free_ports(1)[0]}"  # nothing listens there
    offline = served.run("README.md", "-m edge predict", server=unreachable)
    answers = [json.loads(line) for line in (served.root / "answers.jsonl").read_text().splitlines()]
    assert {a["key"] for a in answers if a["provisional"]} == deferred
    assert all(a["phase"] == 1 for a in answers)
    said = re.search(r"(\d+) deferred answers stand as provisional, (\d+) audits are not made", offline.stderr)
    assert said and int(said.group(1)) == len(deferred), offline.stderr


def test_two_phase_python(served):
    """two-phase.md's Python, saved and run as the text says."""
    snippet = block("docs/two-phase.md", "from edge.cascade import")
    text = " ".join((ROOT / "docs/two-phase.md").read_text().split())
    saved_as, command = re.search(r"saved as `([\w.]+)`, run from the repository root with `([^`]+)`", text).groups()
    assert saved_as in command
    (served.root / saved_as).write_text(served.localised(snippet.text))
    printed = served.sh(command).stdout.splitlines()
    answers = [eval(line, {"__builtins__": {}}, {"True": True, "False": False, "None": None}) for line in printed]  # noqa: S307 - dicts printed by the snippet
    assert [a["key"] for a in answers] == ["r1", "r2"]
    assert all(a["phase"] in (1, 2) and a["provisional"] is False for a in answers)


# -- continued evaluation -----------------------------------------------------------------------------------
def test_label_then_evaluate(served):
    served.run("README.md", "TOKEN=$(python3")  # README's first prediction, key review-1, is captured
    label = next(c for c in block("README.md", "-m evaluation label").commands() if "evaluation label" in c)
    assert "labeled 'review-1'" in served.sh(label).stdout
    evaluate = next(c for c in block("README.md", "make evaluate").commands() if c.startswith("make evaluate"))
    done = served.sh(evaluate, timeout=600, check=False)
    assert done.returncode in (0, 3), done.stderr[-3000:]  # README: exits 3 when a critical alert fires
    # README: "make evaluate   # Spark: evaluation-runs/latest/ (metrics.parquet, report.json/html, alerts.json)"
    listed = re.search(r"evaluation-runs/latest/ \(([^)]*)\)", block("README.md", "make evaluate").text)
    assert listed, "README no longer says what make evaluate writes"
    for name in listed.group(1).split(", "):
        stem, _, suffixes = name.partition(".")
        for suffix in suffixes.split("/"):  # report.json/html: report.json and report.html
            assert (served.root / "evaluation-runs" / "latest" / f"{stem}.{suffix}").exists(), f"{stem}.{suffix}"
    if done.returncode == 3:
        alerts = json.loads((served.root / "evaluation-runs" / "latest" / "alerts.json").read_text())
        assert any(a["active"] and a["level"] == "critical" for a in alerts)


# -- batch scoring ------------------------------------------------------------------------------------------
def write_reviews(path: Path, count: int) -> list[str]:
    keys = [f"review-{i}" for i in range(count)]
    texts = list(BOOK_REVIEWS.values())
    with gzip.open(path, "wt") as out:
        for i, key in enumerate(keys):
            out.write(json.dumps({"key": key, "text": texts[i % len(texts)]}) + "\n")  # README: the key field
    return keys


def read_output(path: Path):
    import pyarrow.parquet as pq

    return pq.read_table(path / "predictions.parquet").to_pylist()


def test_readme_batch(served):
    keys = write_reviews(served.root / "reviews.jsonl.gz", 30)
    holding = "make batch INPUT=reviews.jsonl.gz"
    command = next(c for c in block("README.md", holding).commands() if holding in c)  # the block's next is excused
    done = served.sh(served.localised(command), timeout=600)
    assert "starting Spark" in done.stderr
    assert "30 rows: 30 scored, 0 errors" in done.stderr
    rows = read_output(served.root / "out")
    assert sorted(json.loads(r["key"]) for r in rows) == sorted(keys)  # the key exactly as it was sent


def test_batch_commands(served):
    needs_data()
    with (served.root / "reviews.csv").open("w") as out:
        out.write('review_id,review\n7,"A moving, funny film."\n8,"Dull, and far too long."\n')
    commands = block("docs/batch.md", "make batch INPUT=../shared/data").commands()
    done = served.sh(served.localised("\n".join(commands)), timeout=900)
    assert "50000 rows: 50000 scored" in done.stderr
    assert len(read_output(served.root / "predictions")) == 50_000
    csv_rows = read_output(served.root / "out")
    assert {r["review_id"]: r["label"] for r in csv_rows} == {"7": "positive", "8": "negative"}  # a CSV column is text
    assert list((served.root / "out" / "predictions.jsonl").glob("part-*"))
    assert "usage: python -m batch" in done.stdout


def test_sql_snippet(served):
    """docs/batch.md's SQL, saved under the name its command runs, and run from the copy's root as it says."""
    needs_data()
    (command,) = block("docs/batch.md", "sentiment_sql.py").commands()
    snippet = block("docs/batch.md", "from batch.udf import register_sql_function")
    (served.root / "sentiment_sql.py").write_text(snippet.text)
    done = served.sh(command, timeout=600)
    text = (ROOT / "docs/batch.md").read_text()
    assert "It prints 3 scored reviews, then the count of each label over the 25,000" in " ".join(text.split())
    assert "only showing top 3 rows" in done.stdout and "positive_review_probability" in done.stdout, done.stdout
    per_label = dict(re.findall(r"\|\s*(positive|negative)\s*\|\s*(\d+)\s*\|", done.stdout))  # label, count(1)
    assert set(per_label) == {"positive", "negative"} and sum(map(int, per_label.values())) == 25_000, done.stdout
