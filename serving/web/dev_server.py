"""Serve the phase-1 page on loopback: `python -m serving.web.dev_server [run|start|stop] [--port 8095] [--server URL]
[--key-file FILE]`. `run` (the default) serves in the foreground until Ctrl-C; `start` (`make web`) serves in the
background, records the server's pid in tmp/web.pid and returns once the page answers; `stop` (`make web-stop`)
ends the recorded process and waits until it is gone.

Static files only, from three places, each under its own prefix and nothing else of the tree:
  /                  edge/web/ (index.html, app.js, style.css)
  /vendor/...        the few files the page loads from edge/web/node_modules (npm ci from the committed lock file)
  /bundle/...        the device bundle, dist/edge/ (model.onnx, tokenizer.json, settings.json: `make edge`)
and POST /predictions/<the bundle's phase-2 model>, passed on to TorchServe's inference API with the current
inference token read from TorchServe's key_file.json at that moment: the credential never reaches the browser
nor any file. It is why the page calls its own origin: TorchServe 0.12 checks the token on CORS preflight
requests too (a browser never sends credentials on one), so with token authorization on it refuses every
cross-origin call from a page.

Because this server adds a credential, it answers only the page itself (`allowed`): a POST whose Origin is not
the page's own origin (http://127.0.0.1:<port> or http://localhost:<port>), or whose Sec-Fetch-Site is not
`same-origin`, or that carries no Origin at all, gets 403 and never reaches TorchServe. Otherwise any site the
user has open could score reviews on the user's TorchServe with a `no-cors` fetch or a form (a text/plain POST
is a "simple" request, sent without a preflight) and write them into the captures the evaluation trusts. A
Host that is not a loopback name is refused too, so a DNS-rebound name cannot pass as the page's origin. Only
application/json is passed on, a type no cross-site request can carry without a preflight.

Compressible files are sent gzipped when the browser accepts it (20.5 MB of files, 6.3 MB gzipped), each
compressed once per version of the file and kept in memory, never per request. Every file carries an ETag and
a Last-Modified, so the page's no-cache revalidations cost a 304: Chromium revalidates http.server's HTTP/1.0
answers by Last-Modified only. The proxied answers are passed on as TorchServe sent them.

Standard library and the error registry (handler.errors, pure Python) only: the page's server must not pull in
torch or TorchServe.
"""

from __future__ import annotations

import argparse
import email.utils
import gzip
import json
import logging
import mimetypes
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from handler.errors import ServingError
from serving.run.server import max_request_size

logger = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "edge" / "web"
BUNDLE = ROOT / "dist" / "edge"
PORT = 8095  # loopback, clear of TorchServe's 8080-8082
PID_FILE = ROOT / "tmp" / "web.pid"  # the background server's (`start`), read by `stop`
LOG_FILE = ROOT / "logs" / "web.log"
START_TIMEOUT_S = 30.0  # compressing the page's files takes about a second on one core
NODE = PAGE / "node_modules"
# Exactly what the page loads: onnxruntime-web's WebAssembly-only build (no WebGPU/WebNN code) and the Rust
# tokenizers library compiled to WebAssembly (its .wasm is inlined in index.js).
VENDOR = {
    "ort.wasm.min.mjs": NODE / "onnxruntime-web/dist/ort.wasm.min.mjs",
    "ort-wasm-simd-threaded.mjs": NODE / "onnxruntime-web/dist/ort-wasm-simd-threaded.mjs",
    "ort-wasm-simd-threaded.wasm": NODE / "onnxruntime-web/dist/ort-wasm-simd-threaded.wasm",
    "web-tokenizers.js": NODE / "@mlc-ai/web-tokenizers/lib/index.js",
}
BUNDLE_FILES = ("model.onnx", "tokenizer.json", "settings.json")
PAGE_FILES = ("index.html", "app.js", "style.css")
LOOPBACK_NAMES = ("127.0.0.1", "localhost")  # how a browser on this machine names the page's server
MAX_BODY = max_request_size()  # what TorchServe would refuse is refused here, not passed on
TYPES = {
    ".mjs": "text/javascript",
    ".js": "text/javascript",
    ".wasm": "application/wasm",
    ".onnx": "application/octet-stream",
}
# Worth gzipping: the wasm to 0.26 of its size, the JavaScript to 0.36, tokenizer.json to 0.30, model.onnx (int8
# weights) only to 0.91. Level 6: level 9 saves 0.3 % more for 1.8x the time.
COMPRESSIBLE = frozenset((".wasm", ".mjs", ".js", ".onnx", ".json", ".html", ".css"))
GZIP_LEVEL = 6


def refusal(code: str, message: str) -> tuple[HTTPStatus, bytes]:
    """A refusal as every error is answered: the registry's status and {"error": {"code", "message"}}, compact."""
    error = ServingError(code, message)  # an unregistered code fails here, at import
    return HTTPStatus(error.status), json.dumps(error.body(), separators=(",", ":")).encode()


FORBIDDEN = refusal("forbidden", "only the page itself may ask for predictions here")
UNSUPPORTED = refusal("unsupported_media_type", "send Content-Type application/json")
UNREACHABLE = refusal("unreachable", "TorchServe did not answer; the page keeps its own answer")


@dataclass(frozen=True)
class Asset:
    """One file as served: its bytes, their gzip (None where not worth it), its type and validator."""

    body: bytes
    gzipped: bytes | None
    kind: str
    etag: str  # of the identity bytes; the gzipped ones are another representation, with their own
    modified: int  # seconds since the epoch, as Last-Modified has them


_assets: dict[Path, tuple[tuple[int, int], Asset]] = {}  # file -> ((mtime_ns, size), Asset)
_assets_lock = threading.Lock()  # one compression per file version, even when the page asks in parallel


def resolve(path: str) -> Path | None:
    """The file a URL path names, or None: only the listed files are served, so no path can climb out."""
    path = path.split("?", 1)[0]
    if path in ("/", "/index.html"):
        return PAGE / "index.html"
    prefix, _, name = path.lstrip("/").rpartition("/")
    if prefix == "" and name in PAGE_FILES:
        return PAGE / name
    if prefix == "vendor":
        return VENDOR.get(name)
    if prefix == "bundle" and name in BUNDLE_FILES:
        return BUNDLE / name
    return None


def asset(file: Path) -> Asset:
    """`file` as served, read and compressed once per version (mtime and size) and kept until the file changes."""
    info = file.stat()
    stamp = (info.st_mtime_ns, info.st_size)
    with _assets_lock:
        cached = _assets.get(file)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        body = file.read_bytes()
        gzipped = gzip.compress(body, GZIP_LEVEL, mtime=0) if file.suffix in COMPRESSIBLE else None
        kind = TYPES.get(file.suffix) or mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        made = Asset(
            body=body,
            gzipped=gzipped if gzipped is not None and len(gzipped) < len(body) else None,
            kind=kind,
            etag=f'"{stamp[1]:x}-{stamp[0]:x}"',
            modified=int(info.st_mtime),
        )
        _assets[file] = (stamp, made)
        return made


def precompress() -> None:
    """Read and compress every file the page loads now, so that no browser waits for it (1 s on one core)."""
    files = [PAGE / n for n in PAGE_FILES] + list(VENDOR.values()) + [BUNDLE / n for n in BUNDLE_FILES]
    assets = [asset(f) for f in files if f.is_file()]
    plain, gzipped = sum(len(a.body) for a in assets), sum(len(a.gzipped or a.body) for a in assets)
    logger.info("the page's files: %.1f MB, %.1f MB gzipped", plain / 1e6, gzipped / 1e6)


def accepts_gzip(header: str | None) -> bool:
    """Whether an Accept-Encoding header allows gzip (RFC 9110 12.5.3): named with q > 0, or `*` with q > 0."""
    weights: dict[str, float] = {}
    for item in (header or "").split(","):
        name, *params = (part.strip() for part in item.split(";"))
        weight = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        if name:
            weights[name.lower()] = weight
    if "gzip" in weights:
        return weights["gzip"] > 0
    return weights.get("*", 0.0) > 0


def not_modified(if_none_match: str | None, if_modified_since: str | None, etag: str, modified: int) -> bool:
    """Whether the client's copy is current (RFC 9110 13.2.2): by ETag, compared weakly, when it sends one;
    otherwise by date."""
    if if_none_match:
        tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
        return "*" in tags or etag in tags
    if not if_modified_since:
        return False
    try:
        since = email.utils.parsedate_to_datetime(if_modified_since).timestamp()
    except (TypeError, ValueError):  # not a date: answer in full
        return False
    return modified <= since


def read_token(key_file: Path) -> str | None:
    """TorchServe's current inference token; None without a key file (token authorization off)."""
    try:
        return json.loads(Path(key_file).read_text())["inference"]["key"]
    except (OSError, ValueError, KeyError):
        return None


def phase2_model(bundle: Path) -> str:
    """The one model the page may ask: the bundle's phase-2 model (settings.json, as the page reads it)."""
    return json.loads((Path(bundle) / "settings.json").read_text())["phase2_model"]


def phase2_timeout(bundle: Path) -> float:
    """Seconds a call to phase 2 may take: the bundle's (settings.json), as the page and edge.cascade wait."""
    return float(json.loads((Path(bundle) / "settings.json").read_text())["phase2_timeout_s"])


def allowed(origin: str | None, fetch_site: str | None, host: str | None, port: int) -> bool:
    """Whether a POST comes from the page itself: Origin is the page's own origin (browsers send it on every
    POST, `no-cors` and forms included), the Host a loopback name of this server, and Sec-Fetch-Site, which
    browsers add and no page can forge, says `same-origin` where it is sent."""
    if host not in {f"{name}:{port}" for name in LOOPBACK_NAMES} or origin != f"http://{host}":
        return False
    return fetch_site in (None, "same-origin")


class PageHandler(BaseHTTPRequestHandler):
    server_url: str = ""
    key_file: Path = Path("key_file.json")
    model: str = ""  # the only model passed on: the bundle's phase-2 model
    timeout: float = 0.0  # the bundle's phase-2 timeout: past it the page keeps its own answer anyway

    def do_GET(self) -> None:  # noqa: N802 - the http.server name
        self._static(head=False)

    def do_HEAD(self) -> None:  # noqa: N802 - the http.server name
        self._static(head=True)

    def _static(self, head: bool) -> None:
        file = resolve(self.path)
        try:
            found = asset(file) if file is not None else None
        except OSError:  # not built yet (make web builds it), or removed since
            found = None
        if found is None:
            return self._send(b"not found\n", "text/plain", status=HTTPStatus.NOT_FOUND, head=head)
        gzipped = found.gzipped is not None and accepts_gzip(self.headers.get("Accept-Encoding"))
        etag = found.etag[:-1] + '-gzip"' if gzipped else found.etag
        headers = {"ETag": etag, "Last-Modified": email.utils.formatdate(found.modified, usegmt=True)}
        if found.gzipped is not None:  # the answer depends on Accept-Encoding: caches must key on it
            headers["Vary"] = "Accept-Encoding"
        if gzipped:
            headers["Content-Encoding"] = "gzip"
        if not_modified(self.headers.get("If-None-Match"), self.headers.get("If-Modified-Since"), etag, found.modified):
            return self._send(b"", found.kind, HTTPStatus.NOT_MODIFIED, headers=headers, head=True)
        body = found.gzipped if gzipped else found.body
        return self._send(body, found.kind, headers=headers, head=head)

    def do_POST(self) -> None:  # noqa: N802 - the http.server name
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:  # refused below like any other length out of bounds, not a dropped connection
            length = -1
        if self.path != f"/predictions/{self.model}" or not 0 <= length <= MAX_BODY:
            return self._send(b"not found\n", "text/plain", status=HTTPStatus.NOT_FOUND)
        origin, fetch_site = self.headers.get("Origin"), self.headers.get("Sec-Fetch-Site")
        if not allowed(origin, fetch_site, self.headers.get("Host"), self.server.server_address[1]):
            logger.warning("refused a POST from origin %s (Sec-Fetch-Site %s): not the page's", origin, fetch_site)
            return self._refuse(*FORBIDDEN)
        if self.headers.get("Content-Type", "").split(";")[0].strip().lower() != "application/json":
            return self._refuse(*UNSUPPORTED)
        token = read_token(self.key_file)
        request = urllib.request.Request(
            self.server_url.rstrip("/") + self.path,
            data=self.rfile.read(length),
            headers={
                "Content-Type": self.headers["Content-Type"],
                **({"Authorization": f"Bearer {token}"} if token else {}),
            },
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 - the configured server
                status, body, kind = response.status, response.read(), response.headers.get("Content-Type")
        except urllib.error.HTTPError as err:
            status, body, kind = err.code, err.read(), err.headers.get("Content-Type")
        except OSError as err:  # TorchServe down or too slow: the page keeps its own answer, provisional
            logger.warning("TorchServe unreachable (%s)", type(err).__name__)
            return self._refuse(*UNREACHABLE)
        return self._send(body, kind or "application/json", HTTPStatus(status), cache=False)

    def _refuse(self, status: HTTPStatus, body: bytes) -> None:
        self._send(body, "application/json", status, cache=False)

    def _send(
        self,
        body: bytes,
        kind: str,
        status: HTTPStatus = HTTPStatus.OK,
        cache: bool = True,
        headers: dict[str, str] | None = None,
        head: bool = False,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        if status != HTTPStatus.NOT_MODIFIED:
            self.send_header("Content-Length", str(len(body)))
        # the token must not outlive the page in a cache; the rest may be revalidated
        self.send_header("Cache-Control", "no-cache" if cache else "no-store")
        self.send_header("Referrer-Policy", "no-referrer")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the http.server signature
        logger.debug("%s " + format, self.address_string(), *args)


def make_server(port: int, server_url: str, key_file: Path) -> ThreadingHTTPServer:
    """The page's server on 127.0.0.1:`port` (0: any free port), its files compressed before it accepts a call."""
    fields = {
        "server_url": server_url,
        "key_file": Path(key_file),
        "model": phase2_model(BUNDLE),
        "timeout": phase2_timeout(BUNDLE),
    }
    handler = type("Handler", (PageHandler,), fields)
    precompress()
    return ThreadingHTTPServer(("127.0.0.1", port), handler)


def missing() -> list[Path]:
    return [p for p in [*VENDOR.values(), *(BUNDLE / n for n in BUNDLE_FILES)] if not p.is_file()]


def recorded_pid() -> int | None:
    """The background server's pid, when the recorded process is still that server (a pid is reused)."""
    try:
        pid = int(PID_FILE.read_text().strip())
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return None
    return pid if b"serving.web.dev_server" in command and running(pid) else None


def start(argv: list[str], port: int) -> int:
    """Serve in the background (`run` with the same options) and return once the page answers."""
    if (pid := recorded_pid()) is not None:
        print(f"the page's server already runs (pid {pid}): `make web-stop` first", file=sys.stderr)
        return 1
    for path in (PID_FILE, LOG_FILE):
        path.parent.mkdir(parents=True, exist_ok=True)
    with LOG_FILE.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "serving.web.dev_server", "run", *argv],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # outlives `make web` and its terminal
        )
    PID_FILE.write_text(f"{process.pid}\n")
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            PID_FILE.unlink(missing_ok=True)
            print(f"the page's server exited ({process.returncode}); see {LOG_FILE}", file=sys.stderr)
            return 1
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - our own loopback server
                if response.status == HTTPStatus.OK:
                    print(f"the page: {url} (pid {process.pid}, log {LOG_FILE}); `make web-stop` stops it")
                    return 0
        except OSError:
            pass
        time.sleep(0.1)
    process.terminate()
    PID_FILE.unlink(missing_ok=True)
    print(f"the page's server did not answer within {START_TIMEOUT_S:.0f} s; see {LOG_FILE}", file=sys.stderr)
    return 1


def running(pid: int) -> bool:
    """Whether the process runs: exited but not yet reaped (a zombie) counts as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def stop(timeout: float = 10.0) -> int:
    """End the background server by its recorded pid and wait until it is gone."""
    pid = recorded_pid()
    if pid is None:
        PID_FILE.unlink(missing_ok=True)
        print("no page server recorded as running")
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while running(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if running(pid):
        os.kill(pid, signal.SIGKILL)
    PID_FILE.unlink(missing_ok=True)
    print(f"the page's server (pid {pid}) stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m serving.web.dev_server", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", nargs="?", default="run", choices=["run", "start", "stop"])
    parser.add_argument("--port", type=int, default=PORT, help="loopback port (%(default)s)")
    parser.add_argument("--server", default="http://127.0.0.1:8080", help="TorchServe's inference URL (%(default)s)")
    parser.add_argument("--key-file", type=Path, default=ROOT / "key_file.json", help="TorchServe's key file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "stop":
        return stop()
    if absent := missing():
        print(f"missing: {', '.join(map(str, absent))}: run `make web`", file=sys.stderr)
        return 1
    if args.command == "start":
        return start([a for a in argv if a != "start"], args.port)
    httpd = make_server(args.port, args.server, args.key_file)
    print(
        f"the page: http://127.0.0.1:{httpd.server_address[1]}/ (phase 2: {args.server}); Ctrl-C stops it", flush=True
    )
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # `stop`: leave through the finally below
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
