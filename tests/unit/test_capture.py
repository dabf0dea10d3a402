"""Capture in-process: the records, the layout, text only when asked, failures counted and never raised."""

from __future__ import annotations

import json
import logging
import os
import shutil
import stat
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import settings as settings_of_hypothesis
from hypothesis import strategies as st

from evaluation import captures
from evaluation.captures import read as read_captures
from handler import capture, settings
from handler.capture import CaptureWriter, Item
from handler.codec import Instance, Request, loads
from handler.errors import ServingError
from tests.conftest import BOOK_REVIEWS
from tests.unit.test_handler import run

FIELDS = {
    "prediction_id", "key", "model_name", "model_version", "time", "positive_review_probability",
    "positive_review_logits", "label", "chars", "tokens", "truncated", "unknown_token_fraction", "error",
}  # fmt: skip


class FakeScore:
    def __init__(self, logit: float, tokens: int = 4, unknown_tokens: int = 1) -> None:
        self.logit, self.tokens, self.unknown_tokens = logit, tokens, unknown_tokens


def writer(directory: Path, **changes) -> CaptureWriter:
    return CaptureWriter(replace(settings.CaptureSettings(directory=str(directory)), **changes), "sentiment", "1.0", 8)


def keyed(err: ServingError, key: object) -> ServingError:
    err.key = key
    return err


def test_items_cover_answers_refusals_and_failures():
    requests = [
        Request([Instance("great film", "k1"), keyed(ServingError("empty_text", "x"), "k2"), Instance("bad", 7)], True),
        ServingError("invalid_json", "x"),
        Request([Instance("fine", None)]),
    ]
    scores = [[FakeScore(2.0), FakeScore(-1.0)], ServingError("invalid_json", "x"), ServingError("internal_error", "x")]
    out = capture.items(requests, scores, ["r0", "r1", "r2"], settings.CaptureSettings())
    assert [i.prediction_id for i in out] == ["r0:0", "r0:1", "r0:2", "r1:0", "r2:0"]
    assert [i.key for i in out] == ["k1", "k2", 7, None, None]  # a refused instance keeps its valid key
    assert [i.error for i in out] == [None, "empty_text", None, "invalid_json", "internal_error"]
    assert out[0].logit == 2.0 and out[0].chars == len("great film") and out[2].logit == -1.0
    assert all(i.text is None for i in out)  # text is user data: not unless asked for
    with_text = capture.items(requests, scores, ["r0", "r1", "r2"], settings.CaptureSettings(capture_text=True))
    assert with_text[0].text == "great film" and with_text[3].text is None


def test_records_land_in_model_version_hour_partitions_one_file_per_process(tmp_path):
    w = writer(tmp_path)
    when = time.time()
    w.submit([Item("r:0", "k", 10, 1.5, 8, 2, None, None), Item("r:1", None, None, None, None, None, "x", None)], when)
    assert w.flush()
    [path] = captures.files(tmp_path)
    hour = time.strftime("%Y-%m-%dT%H", time.gmtime(when))
    assert path.relative_to(tmp_path).parts[:3] == ("model=sentiment", "version=1.0", f"hour={hour}")
    assert path.name.endswith(f"-{os.getpid()}.jsonl")
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    good, error = captures.read(tmp_path).records
    assert set(good) == FIELDS and set(error) == FIELDS
    assert good["key"] == "k" and good["label"] == "positive" and good["truncated"] is True  # 8 tokens: the cap
    assert good["positive_review_probability"] == pytest.approx(1 / (1 + 2.718281828459045**-1.5))
    assert good["unknown_token_fraction"] == 0.25 and good["time"].endswith("Z")
    assert error["error"] == "x" and error["positive_review_probability"] is None
    w.close()


def test_text_files_are_readable_by_the_owner_only(tmp_path):
    w = writer(tmp_path, capture_text=True)
    w.submit([Item("r:0", "k", 4, 0.5, 2, 0, None, "good")])
    assert w.flush()
    [path] = captures.files(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert captures.read(tmp_path).records[0]["text"] == "good"
    w.close()


def test_a_torn_line_is_skipped_and_counted(tmp_path):
    w = writer(tmp_path)
    w.submit([Item(f"r:{i}", i, 4, 0.5, 2, 0, None, None) for i in range(3)])
    assert w.flush()
    [path] = captures.files(tmp_path)
    with open(path, "ab") as f:  # what a worker killed mid-write leaves
        f.write(b'{"prediction_id": "r:3", "key": 3, "mod')
    read = captures.read(tmp_path)
    assert len(read.records) == 3 and read.torn == 1
    w.close()


def test_an_unwritable_directory_counts_and_logs_once(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    w = writer(blocker / "captures")
    with caplog.at_level(logging.WARNING, logger="handler.capture"):
        for _ in range(5):
            w.submit([Item("r:0", None, 4, 0.5, 2, 0, None, None)] * 3)
            assert w.flush()
    assert w.lost == 15 and w.unreported() == (15, 0) and w.unreported() == (0, 0)
    assert len([r for r in caplog.records if "capture failed" in r.message]) == 1
    w.close()


def test_a_numeric_key_is_recorded_as_it_was_sent(tmp_path):
    """A key sent as 1.10 is recorded as 1.10 (a float would write 1.1), on both the template's path (an answered
    instance) and the general one (a refusal)."""
    w = writer(tmp_path / "captures")
    w.submit([Item("r:0", loads("1.10"), 4, 0.5, 2, 0, None, None), Item("r:1", loads("1E+2"), None, None, None, None,
              "empty_text", None)])  # fmt: skip
    assert w.flush()
    [written] = (tmp_path / "captures").rglob("*.jsonl")
    first, second = written.read_text().splitlines()
    assert '"key": 1.10,' in first and '"key": 1E+2,' in second
    assert json.loads(first)["key"] == 1.1 and json.loads(second)["error"] == "empty_text"
    w.close()


def test_the_counters_lose_no_update_under_threads(tmp_path, monkeypatch):
    """The serving thread counts drops while the writer counts losses: `+=` from two threads loses updates."""
    monkeypatch.setattr(sys, "getswitchinterval", sys.getswitchinterval)
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter can: a lost update shows at once
    w = writer(tmp_path / "captures")
    try:
        threads = [
            threading.Thread(target=lambda: [w.count(lost=1, dropped=2) for _ in range(20_000)]) for _ in range(4)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(0.005)
    assert (w.lost, w.dropped) == (80_000, 160_000) and w.unreported() == (80_000, 160_000)
    w.close()


def test_close_never_blocks_on_a_full_queue(tmp_path, monkeypatch):
    """A writer stuck in a write (a hung filesystem) with its queue full: close() gives up after its timeout
    instead of waiting forever to queue its end mark; the writer stops once its write returns."""
    release = threading.Event()
    monkeypatch.setattr(CaptureWriter, "_write", lambda self, batches: release.wait(30))
    w = writer(tmp_path / "captures", queue_batches=2)
    for i in range(6):  # one being written, two queued, the rest dropped
        w.submit([Item(f"r:{i}", None, 4, 0.5, 2, 0, None, None)])
    assert w.dropped >= 1
    closing = threading.Thread(target=w.close, kwargs={"timeout": 0.2})
    started = time.monotonic()
    closing.start()
    closing.join(15)
    assert not closing.is_alive() and time.monotonic() - started < 10
    release.set()
    w._thread.join(10)
    assert not w._thread.is_alive()


def test_a_deleted_directory_is_recreated(tmp_path, monkeypatch):
    monkeypatch.setattr(capture, "REOPEN_CHECK_S", 0.0)
    w = writer(tmp_path / "captures")
    w.submit([Item("r:0", None, 4, 0.5, 2, 0, None, None)])
    assert w.flush()
    shutil.rmtree(tmp_path / "captures")
    w.submit([Item("r:1", None, 4, 0.5, 2, 0, None, None)])
    assert w.flush()
    assert [r["prediction_id"] for r in captures.read(tmp_path / "captures").records] == ["r:1"] and w.lost == 0
    w.close()


def test_retention_deletes_old_hour_partitions(tmp_path):
    old = tmp_path / "model=sentiment" / "version=1.0" / "hour=2000-01-01T00"
    old.mkdir(parents=True)
    (old / "h-1.jsonl").write_text("{}\n")
    w = writer(tmp_path, retention_hours=24)
    w.submit([Item("r:0", None, 4, 0.5, 2, 0, None, None)])
    assert w.flush()
    assert not old.exists() and len(captures.files(tmp_path)) == 1
    w.close()


def test_capture_settings_fail_fast():
    assert settings.parse_capture(None) == settings.CaptureSettings()
    with pytest.raises(ValueError, match="unknown settings"):
        settings.parse_capture({"directroy": "x"})
    with pytest.raises(ValueError, match="text_sample_rate"):
        settings.parse_capture({"text_sample_rate": 2})
    with pytest.raises(ValueError, match="true or false"):
        settings.parse_capture({"capture_text": "yes"})


def test_the_handler_captures_every_answered_instance(served, captures):
    handler, context = served
    assert handler.capture.flush()  # earlier tests' records (the served model is shared) are written first
    before = len(read_captures(captures).records)
    run(served, [(json.dumps({"text": BOOK_REVIEWS["positive"], "key": "cap-1"}).encode(), "application/json")])
    run(served, [(b"", "text/plain")])
    assert handler.capture.flush()
    records = read_captures(captures).records[before:]
    got = [(r["key"], r["label"], r["error"]) for r in records]
    assert got == [("cap-1", "positive", None), (None, None, "empty_body")]
    assert records[0]["prediction_id"] == "req-0:0" and records[0]["model_name"] == "sentiment"


KEYS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=40)
)


@settings_of_hypothesis(max_examples=500, deadline=None)
@given(
    key=KEYS,
    request_id=st.text(max_size=40),
    logit=st.one_of(st.none(), st.floats(min_value=-1e6, max_value=1e6)),
    tokens=st.integers(min_value=0, max_value=2000),
    unknown=st.integers(min_value=0, max_value=2000),
    chars=st.one_of(st.none(), st.integers(min_value=0, max_value=100_000)),
    text=st.one_of(st.none(), st.text(max_size=30)),
    audited=st.booleans(),
)
def test_a_line_is_the_json_of_its_record(key, request_id, logit, tokens, unknown, chars, text, audited):
    """The writer's template and json.dumps(record(...)) write the same bytes, for any key, id and score."""
    from handler.codec import Audit

    audit = Audit(0.25, "1.0") if audited else None
    error = None if logit is not None else "invalid_text"
    item = Item(f"{request_id}:0", key, chars, logit, tokens, min(unknown, tokens), error, text, audit)
    model = capture.ModelFields.of("sentiment-ü", '1.0"')
    stamp = capture.utc(1_796_000_000.5)
    assert capture.line(item, model, stamp, 1024) == json.dumps(
        capture.record(item, "sentiment-ü", '1.0"', stamp, 1024)
    )
