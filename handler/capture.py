"""Capture: every instance the handler answers, appended as one JSON line for Continued Model Evaluation.

Torch-free and TorchServe-free: the handler hands each batch over (`items`, `CaptureWriter.submit`, which makes
its JSON lines) and a thread of the worker writes them, so a slow, full, read-only or deleted directory costs the
prediction nothing but the hand-over; what could not be written is counted (`unreported`, reported by the
handler on the metrics port) and logged at most once per `error_log_every_s`.

Layout, one file per worker process and hour, so that workers and replicas never coordinate:

    <directory>/model=<name>/version=<version>/hour=<YYYY-MM-DDTHH>/<host>-<pid>.jsonl

A worker killed mid-write leaves at most one torn line at the end of its own file; readers skip and count it
(evaluation.captures). Review text is written only with `capture_text` (a sample of `text_sample_rate`); the
files and directories are then created readable by the owner only. Hour partitions older than
`retention_hours` are deleted by the writers themselves.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import random
import shutil
import socket
import threading
import time
from json.encoder import encode_basestring_ascii as _string  # json.dumps' own escaping of a str (C)
from pathlib import Path
from typing import NamedTuple

from handler.codec import Audit, Instance, encode, key_json, label, sigmoid
from handler.errors import ServingError
from handler.settings import CaptureSettings

logger = logging.getLogger(__name__)
HOUR_FORMAT = "%Y-%m-%dT%H"
REOPEN_CHECK_S = 1.0  # how often the writer checks that its file is still the one on disk (deleted, replaced)
RETENTION_EVERY_S = 3600.0
DRAIN_MAX = 1000  # batches written with one write call at most
# The writer wakes at most this often: under load it writes many batches per wake-up and per system call, instead
# of taking the interpreter lock from the serving thread for every batch. A killed worker loses at most this much.
WRITE_EVERY_S = 0.05


class Item(NamedTuple):
    """One answered instance as the handler's thread hands it over: plain values, cheap to build."""

    prediction_id: str  # TorchServe's request id and the instance's index in the request: "<request id>:<index>"
    key: object  # the client's key as sent, or None
    chars: int | None  # characters of the review (None when the request could not be decoded)
    logit: float | None
    tokens: int | None  # after truncation to max_tokens
    unknown_tokens: int | None
    error: str | None  # the error code (handler.errors) of a refused instance
    text: str | None  # only with capture_text, for a sampled share
    audit: Audit | None = None  # the device's own answer, on an instance edge.cascade audits


def items(requests: list, scores: list, request_ids: list, settings: CaptureSettings) -> list[Item]:
    """The batch's instances in order: answered ones with their scores, refused ones with their error code."""
    out: list[Item] = []
    for request, scored, request_id in zip(requests, scores, request_ids, strict=True):
        if isinstance(request, ServingError):  # the request as a whole was refused: one record for it
            out.append(Item(f"{request_id}:0", request.key, None, None, None, None, request.code, None))
            continue
        it = iter(scored) if not isinstance(scored, ServingError) else None
        for idx, item in enumerate(request.items):
            pid = f"{request_id}:{idx}"
            if isinstance(item, ServingError):  # with its key when that key was valid (handler.codec)
                out.append(Item(pid, item.key, None, None, None, None, item.code, None))
            elif it is None:  # scoring failed for this request: every instance got the internal error
                out.append(Item(pid, item.key, len(item.text), None, None, None, scored.code, None, item.audit))
            else:
                score = next(it)
                out.append(
                    Item(pid, item.key, len(item.text), score.logit, score.tokens, score.unknown_tokens, None,
                         _text(item, settings), item.audit)
                )  # fmt: skip
    return out


def _text(item: Instance, settings: CaptureSettings) -> str | None:
    if settings.capture_text and (settings.text_sample_rate >= 1.0 or random.random() < settings.text_sample_rate):
        return item.text
    return None


def utc(when: float) -> str:
    """ISO 8601 UTC time with milliseconds: 2026-12-01T03:45:12.123Z."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(when)) + f".{int(when * 1000) % 1000:03d}Z"


def record(item: Item, model_name: str, version: str, when: float | str, max_tokens: int) -> dict:
    """The JSON object written for one instance (README: Continued evaluation lists the fields)."""
    answered = item.logit is not None
    out = {
        "prediction_id": item.prediction_id,
        "key": item.key,
        "model_name": model_name,
        "model_version": version,
        "time": when if isinstance(when, str) else utc(when),
        "positive_review_probability": sigmoid(item.logit) if answered else None,
        "positive_review_logits": item.logit,
        "label": label(item.logit) if answered else None,
        "chars": item.chars,
        "tokens": item.tokens,
        "truncated": item.tokens >= max_tokens if answered else None,  # at the cap: the tail was cut off
        "unknown_token_fraction": (item.unknown_tokens / item.tokens if item.tokens else 1.0) if answered else None,
        "error": item.error,
    }
    if item.audit is not None:  # the device's answer stands beside the server's: evaluation judges both
        out["audit"] = {
            "phase1_probability": item.audit.phase1_probability,
            "phase1_version": item.audit.phase1_version,
        }
    if item.text is not None:
        out["text"] = item.text
    return out


class ModelFields(NamedTuple):
    """The model a writer's records are of, with its two fields as JSON text, written once."""

    name: str
    version: str
    fields: str

    @classmethod
    def of(cls, name: str, version: str) -> ModelFields:
        return cls(name, version, f'"model_name": {_string(name)}, "model_version": {_string(version)}')


def line(item: Item, model: ModelFields, stamp: str, max_tokens: int) -> str:
    """`json.dumps(record(...))`, byte for byte (tested), from a template for what nearly every record is: an
    answered instance without audit or text. A third of the general path's cost, paid in the worker's process
    for every instance it answers; the others take the general path."""
    logit, tokens = item.logit, item.tokens
    if logit is None or item.audit is not None or item.text is not None or item.chars is None:
        return encode(record(item, model.name, model.version, stamp, max_tokens))  # a numeric key as it was sent
    key = item.key
    return (
        f'{{"prediction_id": {_string(item.prediction_id)}, "key": '
        f"{_string(key) if isinstance(key, str) else key_json(key)}, {model.fields}, "
        f'"time": "{stamp}", "positive_review_probability": {sigmoid(logit)!r}, "positive_review_logits": '
        f'{logit!r}, "label": "{label(logit)}", "chars": {item.chars}, '
        f'"tokens": {tokens}, "truncated": {"true" if tokens >= max_tokens else "false"}, '
        f'"unknown_token_fraction": {(item.unknown_tokens / tokens if tokens else 1.0)!r}, "error": null}}'
    )


def resolve(directory: str) -> Path:
    """A relative capture directory is relative to the frontend's working directory (where `torchserve --start`
    ran); TorchServe starts each worker in the unpacked archive's temporary directory, so the worker's own
    working directory is the wrong base. The frontend is the worker's parent process."""
    path = Path(directory)
    if path.is_absolute():
        return path
    with contextlib.suppress(OSError):
        return Path(os.readlink(f"/proc/{os.getppid()}/cwd")) / path
    return Path.cwd() / path


def partition(directory: Path, model_name: str, version: str, when: float) -> Path:
    hour = time.strftime(HOUR_FORMAT, time.gmtime(when))
    return directory / f"model={model_name}" / f"version={version}" / f"hour={hour}"


def expired(directory: Path, now: float, retention_hours: int) -> list[Path]:
    """Hour partitions under `directory` older than `retention_hours`."""
    cutoff = time.strftime(HOUR_FORMAT, time.gmtime(now - retention_hours * 3600))
    return [p for p in directory.glob("model=*/version=*/hour=*") if p.name.removeprefix("hour=") < cutoff]


class CaptureWriter:
    """Appends the batches it is given from a thread of its own; never raises into the caller."""

    def __init__(self, settings: CaptureSettings, model_name: str, version: str, max_tokens: int) -> None:
        self.settings = settings
        self.model_name = model_name
        self.version = version
        self.max_tokens = max_tokens
        self.directory = resolve(settings.directory)
        self.file_name = f"{socket.gethostname()}-{os.getpid()}.jsonl"
        self.model = ModelFields.of(model_name, version)
        self.private = settings.capture_text  # files holding review text: owner only
        self.lost = 0  # records not written: a write failed (full disk, read-only or deleted directory, ...)
        self.dropped = 0  # records not queued: the writer fell `queue_batches` behind
        self.written = 0
        # the counters are added to from the serving thread and the writer's: `+=` is no atomic step
        self._counts = threading.Lock()
        self._reported = (0, 0)
        self._stopping = threading.Event()  # close() could not queue its end mark: the writer stops after a write
        self._queue: queue.Queue = queue.Queue(settings.queue_batches)
        self._fd: int | None = None
        self._path: Path | None = None
        self._checked_at = 0.0
        self._torn = False  # a failed write may have left half a line: the next write starts a new one
        self._next_log = 0.0
        self._next_retention = 0.0
        self._thread = threading.Thread(target=self._run, name="capture-writer", daemon=True)
        self._thread.start()

    def submit(self, batch: list[Item], when: float | None = None) -> None:
        """Hand a batch over without waiting, as its lines; a full queue drops it (counted).

        The lines are made here, on the serving thread, a few µs each: made on the writer thread, they held the
        interpreter lock in stretches the serving thread had to wait out (capture then cost 6 % of c=64
        throughput on short reviews); the writer only joins and writes them, mostly outside the lock."""
        if not batch:
            return
        when = time.time() if when is None else when
        stamp = utc(when)
        lines = [line(item, self.model, stamp, self.max_tokens) for item in batch]
        try:
            self._queue.put_nowait((when, lines))
        except queue.Full:
            self.count(dropped=len(batch))
            self.log_failure(f"the writer is {self.settings.queue_batches} batches behind; batch dropped")

    def count(self, lost: int = 0, dropped: int = 0, written: int = 0) -> None:
        with self._counts:
            self.lost += lost
            self.dropped += dropped
            self.written += written

    def unreported(self) -> tuple[int, int]:
        """(lost, dropped) since the last call: what the handler adds to its counters on the metrics port."""
        with self._counts:
            now = (self.lost, self.dropped)
            delta = (now[0] - self._reported[0], now[1] - self._reported[1])
            self._reported = now
        return delta

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything submitted so far has been written or counted lost (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)
        return not self._queue.unfinished_tasks

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued (for up to `timeout` s), then stop the writer. Never waits on the queue itself: with
        the writer stuck on a hung filesystem and the queue full, the end mark could never be put."""
        self.flush(timeout)
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            self._stopping.set()
        self._thread.join(timeout=5)

    # -- the writer thread --------------------------------------------------------------------------------------
    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            stopping = first is None or self._stopping.is_set()
            batches = [] if first is None else [first]
            if first is None:
                self._queue.task_done()
            else:
                time.sleep(WRITE_EVERY_S)
            while len(batches) < DRAIN_MAX:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:  # the end mark: what came before it is written, then the writer stops
                    self._queue.task_done()
                    stopping = True
                    break
                batches.append(nxt)
            try:
                if batches:
                    self._write(batches)
            except Exception as err:  # noqa: BLE001 - capture never breaks serving: counted, logged, retried next time
                self.count(lost=sum(len(b) for _, b in batches))
                self._torn = True
                self._close_file()
                self.log_failure(_describe(err))
            finally:
                for _ in batches:
                    self._queue.task_done()
            stopping = stopping or self._stopping.is_set()
        self._close_file()

    def _write(self, batches: list[tuple[float, list[str]]]) -> None:
        by_path: dict[Path, list[str]] = {}
        for when, lines in batches:
            path = partition(self.directory, self.model_name, self.version, when) / self.file_name
            by_path.setdefault(path, []).extend(lines)
        for path, lines in by_path.items():
            data = ("\n".join(lines) + "\n").encode("utf-8")
            if self._torn:
                data = b"\n" + data
            fd = self._open(path)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            self._torn = False
            self.count(written=len(lines))
        self._expire()

    def _open(self, path: Path) -> int:
        """The open file for `path`: reopened when the hour changes, or when the file on disk is no longer the one
        held open (its directory deleted, the file moved away): writing on into an unlinked file loses it all."""
        now = time.monotonic()
        if self._fd is not None and path == self._path and now - self._checked_at < REOPEN_CHECK_S:
            return self._fd
        self._checked_at = now
        if self._fd is not None and path == self._path and _same_file(path, self._fd):
            return self._fd
        self._close_file()
        mode = 0o700 if self.private else 0o755
        path.parent.mkdir(parents=True, exist_ok=True, mode=mode)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600 if self.private else 0o644)
        self._path = path
        return self._fd

    def _close_file(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._fd, self._path = None, None

    def _expire(self) -> None:
        now = time.time()
        if now < self._next_retention:
            return
        self._next_retention = now + RETENTION_EVERY_S
        for old in expired(self.directory, now, self.settings.retention_hours):
            logger.info("capture retention: deleting %s", old)
            shutil.rmtree(old, ignore_errors=True)  # another worker may be deleting it too

    def log_failure(self, what: str) -> None:
        now = time.monotonic()
        if now < self._next_log:
            return
        self._next_log = now + self.settings.error_log_every_s
        logger.warning(
            "capture failed: %s; predictions are still answered (%d records lost, %d dropped so far; logged at most "
            "once per %.0f s)",
            what,
            self.lost,
            self.dropped,
            self.settings.error_log_every_s,
        )


def _same_file(path: Path, fd: int) -> bool:
    try:
        on_disk, held = os.stat(path), os.fstat(fd)
    except OSError:
        return False
    return (on_disk.st_dev, on_disk.st_ino) == (held.st_dev, held.st_ino)


def _describe(err: BaseException) -> str:
    """The failure without any record content: the type, errno name and the path it concerns."""
    if isinstance(err, OSError):
        name = os.strerror(err.errno) if err.errno else type(err).__name__
        return f"{type(err).__name__} ({name}) on {err.filename or 'the capture file'}"
    return type(err).__name__


def start(settings: CaptureSettings, model_name: str, version: str, max_tokens: int) -> CaptureWriter | None:
    """The worker's writer, or None when capture is off."""
    if not settings.enabled:
        logger.info("capture is off (handler.capture.enabled: false)")
        return None
    writer = CaptureWriter(settings, model_name, version, max_tokens)
    logger.info("capturing predictions to %s%s", writer.directory, " with review text" if settings.capture_text else "")
    return writer


def sample(batch: list[Item], most: int) -> list[Item]:
    """Up to `most` answered instances of a batch: what the handler observes in its live histograms."""
    return [item for item in batch if item.logit is not None][:most]
