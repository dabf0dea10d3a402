"""serving/web/dev_server.py without a browser:
gzip only when the client accepts it, identity otherwise, ETag revalidation,
HEAD, paths that climb out refused, and the prediction proxy passing TorchServe's answer on as it came."""

from __future__ import annotations

import contextlib
import gzip
import http.client
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from serving.web import dev_server as web

APP_JS = b"// the page's module\n" + b"export const x = 1;\n" * 500
MODEL = bytes(range(256)) * 40


@pytest.fixture
def files(tmp_path, monkeypatch) -> Path:
    """A small stand-in for edge/web/, the vendor files and dist/edge/, so no npm packages or bundle are needed."""
    page, bundle, node = tmp_path / "page", tmp_path / "bundle", tmp_path / "node"
    for folder in (page, bundle, node):
        folder.mkdir()
    (page / "index.html").write_text("<!doctype html><title>t</title>" + "<p>review</p>" * 200)
    (page / "app.js").write_bytes(APP_JS)
    (page / "style.css").write_text("body { margin: 0 }\n" * 50)
    (node / "ort.wasm").write_bytes(b"\0asm" + b"\1\0\0\0" * 4000)
    (bundle / "model.onnx").write_bytes(MODEL)
    (bundle / "tokenizer.json").write_text(json.dumps({"model": {"vocab": {f"w{i}": i for i in range(500)}}}))
    (bundle / "settings.json").write_text(
        '{"max_tokens": 256, "phase2_model": "sentiment-bigram", "phase2_timeout_s": 5.0}'
    )
    (tmp_path / "secret.txt").write_text("not served")
    monkeypatch.setattr(web, "PAGE", page)
    monkeypatch.setattr(web, "BUNDLE", bundle)
    monkeypatch.setattr(web, "VENDOR", {"ort-wasm-simd-threaded.wasm": node / "ort.wasm"})
    monkeypatch.setattr(web, "_assets", {})
    return tmp_path


class FakeTorchServe(BaseHTTPRequestHandler):
    """Answers every POST with a fixed JSON body and remembers what it was sent."""

    seen: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 - the http.server name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.seen.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        answer = json.dumps({"label": "positive", "padding": "x" * 2000}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the http.server signature
        pass


@contextlib.contextmanager
def running(httpd: ThreadingHTTPServer):
    """`httpd` served from a thread; polled every 50 ms so that shutting it down takes no longer."""
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield httpd.server_address[1]
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.fixture
def torchserve():
    FakeTorchServe.seen = []
    with running(ThreadingHTTPServer(("127.0.0.1", 0), FakeTorchServe)) as port:
        yield port


@pytest.fixture
def page(files, torchserve):
    key_file = files / "key_file.json"
    key_file.write_text(json.dumps({"inference": {"key": "s3cret"}}))
    with running(web.make_server(0, f"http://127.0.0.1:{torchserve}", key_file)) as port:
        yield port


def fetch(port: int, path: str, method: str = "GET", body: bytes | None = None, **headers: str):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path, body=body, headers={k.replace("_", "-"): v for k, v in headers.items()})
        response = connection.getresponse()
        return response, response.read()
    finally:
        connection.close()


@pytest.mark.parametrize(
    "path", ["/app.js", "/index.html", "/style.css", "/bundle/tokenizer.json", "/bundle/model.onnx"]
)
def test_gzip_when_accepted(page, files, path):
    response, body = fetch(page, path, Accept_Encoding="gzip, deflate, br")
    assert response.status == 200
    assert response.headers["Content-Encoding"] == "gzip"
    assert response.headers["Vary"] == "Accept-Encoding"
    assert int(response.headers["Content-Length"]) == len(body)
    name = path.rpartition("/")[2]
    want = (files / ("bundle" if path.startswith("/bundle/") else "page") / name).read_bytes()
    assert gzip.decompress(body) == want


def test_the_wasm_is_served_gzipped_as_wasm(page, files):
    response, body = fetch(page, "/vendor/ort-wasm-simd-threaded.wasm", Accept_Encoding="gzip")
    assert response.headers["Content-Type"] == "application/wasm"
    assert response.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(body) == (files / "node" / "ort.wasm").read_bytes()


@pytest.mark.parametrize("accept", [None, "", "identity", "br", "gzip;q=0", "*;q=0", "br, gzip ; q=0.0"])
def test_identity_when_gzip_is_not_accepted(page, accept):
    headers = {} if accept is None else {"Accept_Encoding": accept}
    response, body = fetch(page, "/app.js", **headers)
    assert response.status == 200
    assert response.headers["Content-Encoding"] is None
    assert response.headers["Vary"] == "Accept-Encoding"  # the answer still depends on the header
    assert body == APP_JS


@pytest.mark.parametrize(
    ("header", "accepted"),
    [("gzip", True), ("GZIP;q=0.5", True), ("*", True), ("br;q=1, *;q=0.1", True), ("gzip;q=0, *", False)],
)
def test_accept_encoding_weights(header, accepted):
    assert web.accepts_gzip(header) is accepted


def test_each_file_is_compressed_once_per_version(page, files, monkeypatch):
    calls = []
    real = web.gzip.compress
    monkeypatch.setattr(web.gzip, "compress", lambda *a, **k: calls.append(1) or real(*a, **k))
    for _ in range(3):
        fetch(page, "/app.js", Accept_Encoding="gzip")
    assert calls == []  # make_server compressed it before the first call
    (files / "page" / "app.js").write_bytes(APP_JS + b"// changed\n")
    _, body = fetch(page, "/app.js", Accept_Encoding="gzip")
    _, again = fetch(page, "/app.js", Accept_Encoding="gzip")
    assert len(calls) == 1
    assert gzip.decompress(body) == gzip.decompress(again) == APP_JS + b"// changed\n"


def test_etag_revalidates_each_representation(page):
    gzipped, _ = fetch(page, "/app.js", Accept_Encoding="gzip")
    plain, _ = fetch(page, "/app.js")
    assert gzipped.headers["ETag"] != plain.headers["ETag"]
    assert gzipped.headers["Cache-Control"] == "no-cache"
    response, body = fetch(page, "/app.js", Accept_Encoding="gzip", If_None_Match=gzipped.headers["ETag"])
    assert (response.status, body) == (304, b"")
    assert response.headers["ETag"] == gzipped.headers["ETag"]
    response, body = fetch(page, "/app.js", If_None_Match=gzipped.headers["ETag"])  # the other representation
    assert (response.status, body) == (200, APP_JS)


def test_last_modified_revalidates_for_http_1_0_clients(page, files):
    """Chromium ignores ETag on an HTTP/1.0 answer, which http.server gives, and revalidates by date."""
    first, _ = fetch(page, "/app.js", Accept_Encoding="gzip")
    since = first.headers["Last-Modified"]
    response, body = fetch(page, "/app.js", Accept_Encoding="gzip", If_Modified_Since=since)
    assert (response.status, body) == (304, b"")
    assert response.headers["Content-Encoding"] == "gzip" and response.headers["Vary"] == "Accept-Encoding"
    for stale in ("Thu, 01 Jan 1970 00:00:00 GMT", "yesterday"):
        response, body = fetch(page, "/app.js", Accept_Encoding="gzip", If_Modified_Since=stale)
        assert response.status == 200 and gzip.decompress(body) == APP_JS
    # an ETag that does not match wins over a date that would
    response, _ = fetch(page, "/app.js", Accept_Encoding="gzip", If_None_Match='"other"', If_Modified_Since=since)
    assert response.status == 200


def test_head_sends_the_headers_of_get_and_no_body(page):
    get, get_body = fetch(page, "/bundle/tokenizer.json", Accept_Encoding="gzip")
    head, head_body = fetch(page, "/bundle/tokenizer.json", "HEAD", Accept_Encoding="gzip")
    assert head.status == 200 and head_body == b""
    for name in ("Content-Type", "Content-Length", "Content-Encoding", "ETag", "Last-Modified", "Vary"):
        assert head.headers[name] == get.headers[name]
    assert int(head.headers["Content-Length"]) == len(get_body)
    missing, body = fetch(page, "/nothing", "HEAD")
    assert missing.status == 404 and body == b""


def test_a_range_is_ignored_rather_than_misapplied(page):
    """No ranges are offered (no Accept-Ranges): a Range header gets the whole file, which HTTP allows."""
    response, body = fetch(page, "/app.js", Range="bytes=0-9")
    assert response.status == 200 and body == APP_JS
    assert response.headers["Accept-Ranges"] is None


@pytest.mark.parametrize(
    "path",
    [
        "/../secret.txt",
        "/bundle/../../secret.txt",
        "/vendor/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/bundle/%2e%2e/page/app.js",
        "/page/app.js",
        "/bundle/key_file.json",
        "/key_file.json",
        "/vendor/ort.wasm",
        "//etc/passwd",
    ],
)
def test_paths_outside_the_listed_files_are_refused(page, path):
    for accept in ("gzip", "identity"):
        response, body = fetch(page, path, Accept_Encoding=accept)
        assert response.status == 404 and body == b"not found\n"
        assert response.headers["Content-Encoding"] is None


def own(port: int) -> dict[str, str]:
    """The headers a browser sends with the page's own fetch."""
    return {"Origin": f"http://127.0.0.1:{port}", "Sec-Fetch-Site": "same-origin", "Content-Type": "application/json"}


def test_the_proxy_adds_the_token_and_passes_the_answer_on_as_it_came(page, torchserve):
    response, body = fetch(
        page,
        "/predictions/sentiment-bigram",
        "POST",
        body=b'{"text": "fine"}',
        **{**own(page), "Accept-Encoding": "gzip"},
    )
    assert response.status == 200
    assert json.loads(body)["label"] == "positive"
    assert response.headers["Content-Encoding"] is None  # never compressed: a small answer, passed on as it is
    assert response.headers["Cache-Control"] == "no-store"
    assert FakeTorchServe.seen == [
        {"path": "/predictions/sentiment-bigram", "auth": "Bearer s3cret", "body": b'{"text": "fine"}'}
    ]


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/models", {}),
        ("/predictions/sentiment/1.0", {}),
        ("/predictions/sentiment", {}),  # only the phase-2 model: never the main one
        ("/predictions/sentiment-bigram", {"Content-Length": "x"}),
        ("/predictions/sentiment-bigram", {"Content-Length": str(web.MAX_BODY + 1)}),
    ],
)
def test_the_proxy_refuses_anything_but_a_prediction(page, path, headers):
    connection = http.client.HTTPConnection("127.0.0.1", page, timeout=10)
    try:
        connection.putrequest("POST", path)
        for name, value in {"Content-Length": "2", **own(page), **headers}.items():
            connection.putheader(name, value)
        connection.endheaders(b"{}")
        response = connection.getresponse()
        assert response.status == 404
    finally:
        connection.close()
    assert FakeTorchServe.seen == []


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"},  # any other site's fetch or form
        {"Origin": "http://127.0.0.1:1", "Sec-Fetch-Site": "same-site"},  # another port of this machine
        {"Origin": "null"},  # a sandboxed frame or a data: page
        {},  # no Origin: browsers send one on every POST, so this is no page's call
        {"Sec-Fetch-Site": "cross-site"},  # the Origin right, but the browser says the call is cross-site
        {"Host": "rebound.example:{port}", "Origin": "http://rebound.example:{port}"},  # a DNS-rebound name
    ],
    ids=["cross-site", "other-port", "null", "no-origin", "cross-site-fetch", "rebound-host"],
)
def test_the_proxy_answers_the_page_origin_only(page, headers):
    sent = {"Content-Type": "application/json", "Origin": f"http://127.0.0.1:{page}", "Host": f"127.0.0.1:{page}"}
    sent.update({k: v.replace("{port}", str(page)) for k, v in headers.items()})
    if not headers:
        del sent["Origin"]
    connection = http.client.HTTPConnection("127.0.0.1", page, timeout=10)
    try:
        connection.putrequest("POST", "/predictions/sentiment-bigram", skip_host=True)
        for name, value in {"Content-Length": "2", **sent}.items():
            connection.putheader(name, value)
        connection.endheaders(b"{}")
        response = connection.getresponse()
        assert response.status == 403
        refused = json.loads(response.read())  # in every error's shape (handler.errors): a code and a message
        assert refused["error"]["code"] == "forbidden" and list(refused) == ["error"] and refused["error"]["message"]
    finally:
        connection.close()
    assert FakeTorchServe.seen == []


@pytest.mark.parametrize("origin", ["http://127.0.0.1:{port}", "http://localhost:{port}"])
def test_the_page_origin_is_answered_by_either_loopback_name(page, origin):
    origin = origin.format(port=page)
    headers = {"Origin": origin, "Host": origin.removeprefix("http://"), "Sec-Fetch-Site": "same-origin"}
    response, _ = fetch(page, "/predictions/sentiment-bigram", "POST", body=b"{}", Content_Type="application/json",
                        **headers)  # fmt: skip
    assert response.status == 200


def test_the_proxy_passes_json_only(page):
    """text/plain is what a cross-site simple request can send; the page sends JSON."""
    response, body = fetch(
        page, "/predictions/sentiment-bigram", "POST", body=b"fine", **{**own(page), "Content-Type": "text/plain"}
    )
    refused = json.loads(body)
    assert response.status == 415
    assert refused["error"]["code"] == "unsupported_media_type" and refused["error"]["message"]
    assert FakeTorchServe.seen == []


def test_the_proxy_says_unreachable_when_torchserve_is_down(files):
    dead = ThreadingHTTPServer(("127.0.0.1", 0), FakeTorchServe)
    port = dead.server_address[1]
    dead.server_close()  # nothing listens there now
    with running(web.make_server(0, f"http://127.0.0.1:{port}", files / "absent.json")) as page:
        response, body = fetch(page, "/predictions/sentiment-bigram", "POST", body=b"{}", **own(page))
    assert response.status == 502
    assert json.loads(body) == {
        "error": {"code": "unreachable", "message": "TorchServe did not answer; the page keeps its own answer"}
    }


def test_a_listed_file_not_built_is_not_found(page, files):
    (files / "bundle" / "settings.json").unlink()
    response, body = fetch(page, "/bundle/settings.json", Accept_Encoding="gzip")
    assert response.status == 404 and body == b"not found\n"
