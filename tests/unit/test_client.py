"""serving.client against a stand-in server on loopback:
a lost answer is asked for again, a slow one is awaited."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from serving.client.api import ServingClient, attempt_deadline


@contextmanager
def stand_in(delays: list[float]) -> Iterator[tuple[str, list[float]]]:
    """A server whose n-th POST answers 200 after delays[n] seconds (the last delay repeats); an infinite delay
    never answers, like a job TorchServe dropped. Yields its URL and the times the POSTs arrived."""
    arrivals: list[float] = []
    release = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            arrivals.append(time.monotonic())
            delay = delays[min(len(arrivals), len(delays)) - 1]
            if release.wait(None if delay == float("inf") else delay) and delay == float("inf"):
                return  # shut down without an answer
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", arrivals
    finally:
        release.set()
        server.shutdown()
        server.server_close()
        thread.join()


def client(url: str, **kwargs) -> ServingClient:
    return ServingClient(url, url, key_file=None, **kwargs)


def test_an_answer_that_never_comes_is_asked_for_again_at_the_deadline():
    with stand_in([float("inf"), 0.0]) as (url, arrivals):
        c = client(url, deadline=0.3, retry_backoff=0.05)
        started = time.monotonic()
        response = c.predict_raw("a review", "text/plain")
        elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert (c.retried, c.presumed_lost, len(arrivals)) == (1, 1, 2)
    assert 0.3 <= arrivals[1] - arrivals[0] < 0.3 + 0.05 + 0.5
    assert elapsed < 0.3 + 0.05 + 0.5


def test_the_last_attempt_waits_the_full_timeout():
    """A request slower than the deadline every time is still answered: the last attempt is not cut short."""
    with stand_in([0.6]) as (url, arrivals):
        c = client(url, deadline=0.2, retries=1, timeout=10)
        response = c.predict_raw("a review", "text/plain")
    assert response.status_code == 200
    assert (c.retried, c.presumed_lost, len(arrivals)) == (1, 1, 2)


def test_without_retries_there_is_no_deadline():
    with stand_in([0.5]) as (url, arrivals):
        c = client(url, deadline=0.1, retries=0, timeout=10)
        assert c.predict_raw("a review", "text/plain").status_code == 200
    assert (c.retried, c.presumed_lost, len(arrivals)) == (0, 0, 1)


def test_silence_past_every_attempt_raises():
    with stand_in([float("inf")]) as (url, arrivals):
        c = client(url, deadline=0.1, retries=1, timeout=0.3)
        with pytest.raises(requests.Timeout):
            c.predict_raw("a review", "text/plain")
    assert len(arrivals) == 2


def test_the_deadline_grows_with_the_body():
    assert attempt_deadline(0, 1.0, 2.0) == 1.0
    assert attempt_deadline(6_553_500, 1.0, 2.0) == pytest.approx(14.107)
