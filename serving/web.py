"""Serve the phase-1 page on loopback: `python -m serving.web [--port 8095] [--server URL] [--key-file FILE]`
(`make web`).

Static files only, from three places, each under its own prefix and nothing else of the tree:
  /                  edge/web/ (index.html, app.js, style.css)
  /vendor/...        the few files the page loads from edge/web/node_modules (npm ci from the committed lock file)
  /bundle/...        the device bundle, dist/edge/ (model.onnx, tokenizer.json, settings.json: `make edge`)
and POST /predictions/<model>, passed on to TorchServe's inference API with the current inference token read from
TorchServe's key_file.json at that moment: the credential never reaches the browser nor any file. This is the
proxy a real deployment puts in front of TorchServe (the fleet's nginx adds the token the same way), and it is
why the page calls its own origin: TorchServe 0.12 checks the token on CORS preflight requests too (a browser
never sends credentials on one), so with token authorization on it refuses every cross-origin call from a page.

Standard library only: the page's server must not pull in torch or TorchServe.
"""

from __future__ import annotations

import argparse
import json
import logging
import mimetypes
import re
import sys
import urllib.error
import urllib.request
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

logger = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "edge" / "web"
BUNDLE = ROOT / "dist" / "edge"
PORT = 8095  # loopback, clear of TorchServe's 8080-8082
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
PREDICTION = re.compile(r"^/predictions/[A-Za-z0-9_.-]+$")  # a model's prediction route; nothing else is passed on
MAX_BODY = 6_553_500  # config.properties' max_request_size
TIMEOUT_S = 5.0  # the page stops waiting at 5 s as well
TYPES = {
    ".mjs": "text/javascript",
    ".js": "text/javascript",
    ".wasm": "application/wasm",
    ".onnx": "application/octet-stream",
}


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


def read_token(key_file: Path) -> str | None:
    """TorchServe's current inference token; None without a key file (token authorization off)."""
    try:
        return json.loads(Path(key_file).read_text())["inference"]["key"]
    except (OSError, ValueError, KeyError):
        return None


class PageHandler(BaseHTTPRequestHandler):
    server_url: str = ""
    key_file: Path = Path("key_file.json")

    def do_GET(self) -> None:  # noqa: N802 - the http.server name
        file = resolve(self.path)
        if file is None or not file.is_file():
            return self._send(b"not found\n", "text/plain", status=HTTPStatus.NOT_FOUND)
        kind = TYPES.get(file.suffix) or mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        return self._send(file.read_bytes(), kind, cache=True)

    def do_POST(self) -> None:  # noqa: N802 - the http.server name
        length = int(self.headers.get("Content-Length") or 0)
        if not PREDICTION.match(self.path) or not 0 <= length <= MAX_BODY:
            return self._send(b"not found\n", "text/plain", status=HTTPStatus.NOT_FOUND)
        token = read_token(self.key_file)
        request = urllib.request.Request(
            self.server_url.rstrip("/") + self.path,
            data=self.rfile.read(length),
            headers={
                "Content-Type": self.headers.get("Content-Type", "application/json"),
                **({"Authorization": f"Bearer {token}"} if token else {}),
            },
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # noqa: S310 - the configured server
                status, body, kind = response.status, response.read(), response.headers.get("Content-Type")
        except urllib.error.HTTPError as err:
            status, body, kind = err.code, err.read(), err.headers.get("Content-Type")
        except OSError as err:  # TorchServe down or too slow: the page keeps its own answer, provisional
            logger.warning("TorchServe unreachable (%s)", type(err).__name__)
            return self._send(b'{"error":{"code":"unreachable"}}', "application/json", HTTPStatus.BAD_GATEWAY, False)
        return self._send(body, kind or "application/json", HTTPStatus(status), cache=False)

    def _send(self, body: bytes, kind: str, status: HTTPStatus = HTTPStatus.OK, cache: bool = True) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        # the token must not outlive the page in a cache; the rest may be revalidated
        self.send_header("Cache-Control", "no-cache" if cache else "no-store")
        self.send_header("Referrer-Policy", "no-referrer")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the http.server signature
        logger.debug("%s " + format, self.address_string(), *args)


def make_server(port: int, server_url: str, key_file: Path) -> ThreadingHTTPServer:
    handler = type("Handler", (PageHandler,), {"server_url": server_url, "key_file": Path(key_file)})
    return ThreadingHTTPServer(("127.0.0.1", port), handler)


def missing() -> list[Path]:
    return [p for p in [*VENDOR.values(), *(BUNDLE / n for n in BUNDLE_FILES)] if not p.is_file()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving.web", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=PORT, help="loopback port (%(default)s)")
    parser.add_argument("--server", default="http://127.0.0.1:8080", help="TorchServe's inference URL (%(default)s)")
    parser.add_argument("--key-file", type=Path, default=ROOT / "key_file.json", help="TorchServe's key file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if absent := missing():
        print(f"missing: {', '.join(map(str, absent))}: run `make web`", file=sys.stderr)
        return 1
    httpd = make_server(args.port, args.server, args.key_file)
    print(f"the page: http://127.0.0.1:{httpd.server_address[1]}/ (phase 2: {args.server}); Ctrl-C stops it")
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
