"""Start and stop a TorchServe instance and wait until the model answers.

    python -m serving.server start [--config config.properties] [--workdir .]
    python -m serving.server stop  [--workdir .]

Each instance lives in its own working directory: TorchServe writes key_file.json to its working directory and
its pid file to $TMPDIR, so giving every instance its own pair lets several run side by side (tests, benchmarks).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from serving.client import ServingClient

logger = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[1]
PROBE = "The film is fast moving and has several great action scenes."


def read_properties(path: Path) -> dict[str, str]:
    props = {}
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            name, value = line.split("=", 1)
            props[name.strip()] = value.strip()
    return props


FILE_SETTINGS = ("metrics_config",)  # settings naming a file, relative to the config's folder
LOG4J_ARG = "-Dlog4j.configurationFile="


def absolute_paths(props: dict[str, str], folder: Path) -> dict[str, str]:
    """The settings with relative file paths (metrics yaml, log4j2.xml in vmargs) made absolute against `folder`,
    so that a copy of config.properties written elsewhere still finds the files beside the original."""
    out = dict(props)
    for name in FILE_SETTINGS:
        if name in out and not Path(out[name]).is_absolute():
            out[name] = str((folder / out[name]).resolve())
    if "vmargs" in out:
        words = []
        for word in out["vmargs"].split():
            if word.startswith(LOG4J_ARG) and not Path(word[len(LOG4J_ARG) :]).is_absolute():
                word = LOG4J_ARG + str((folder / word[len(LOG4J_ARG) :]).resolve())
            words.append(word)
        out["vmargs"] = " ".join(words)
    return out


def write_properties(base: Path, overrides: dict[str, str], path: Path) -> Path:
    """Copy a config.properties with some settings replaced (the tests use free ports and a temp store)."""
    props = {**absolute_paths(read_properties(base), Path(base).resolve().parent), **overrides}
    path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
    return path


def free_ports(n: int) -> list[int]:
    """`n` loopback ports free right now (tests and benchmarks run servers beside `make serve`)."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def loopback_properties(model_store: Path) -> dict[str, str]:
    """config.properties overrides for an extra instance: every port free on 127.0.0.1, its own model store."""
    inference, management, metrics, grpc_inference, grpc_management = free_ports(5)
    return {
        "inference_address": f"http://127.0.0.1:{inference}",
        "management_address": f"http://127.0.0.1:{management}",
        "metrics_address": f"http://127.0.0.1:{metrics}",
        "grpc_inference_port": str(grpc_inference),
        "grpc_management_port": str(grpc_management),
        "model_store": str(model_store),
    }


def _env(workdir: Path) -> dict[str, str]:
    tmp = workdir / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    return {
        **os.environ,
        "TMPDIR": str(tmp),  # TorchServe's pid file lives here: one per instance
        "TEMP": str(tmp),
        "LOG_LOCATION": str(workdir / "logs"),
        "METRICS_LOCATION": str(workdir / "logs"),
    }


def torchserve() -> str:
    return str(Path(sys.executable).parent / "torchserve")


def start(
    config: Path,
    workdir: Path,
    model_store: Path | None = None,
    models: str | None = None,
    extra_args: tuple[str, ...] = (),
) -> None:
    workdir = Path(workdir).resolve()
    cmd = [torchserve(), "--start", "--ncs", "--ts-config", str(Path(config).resolve()), *extra_args]
    if model_store:
        cmd += ["--model-store", str(model_store)]
    if models:
        cmd += ["--models", models]
    subprocess.run(cmd, cwd=workdir, env=_env(workdir), check=True, stdout=subprocess.DEVNULL)


def stop(workdir: Path) -> None:
    workdir = Path(workdir).resolve()
    subprocess.run([torchserve(), "--stop"], cwd=workdir, env=_env(workdir), check=False, stdout=subprocess.DEVNULL)


def server_pid(workdir: Path) -> int | None:
    pid_file = Path(workdir).resolve() / "tmp" / ".model_server.pid"
    return int(pid_file.read_text().strip()) if pid_file.exists() else None


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_until_ready(
    client: ServingClient,
    model: str | None = "sentiment",
    timeout: float = 120.0,
    workdir: Path | None = None,
    poll: float = 0.2,
) -> float:
    """Poll /ping, then (if `model`) a real prediction; returns the seconds waited.

    With `workdir`, fails at once if the server process has died (a port in use, a bad config).
    """
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if workdir is not None and not _alive(server_pid(workdir)):
            raise RuntimeError(f"TorchServe exited during start-up; see {Path(workdir) / 'logs'}")
        client.forget_keys()  # key_file.json appears once the frontend is up
        if _pings(client):
            if model is None:
                return time.monotonic() - started
            try:
                # one attempt: a probe sent before the workers have loaded waits in the queue; this loop polls
                if client.predict_raw(PROBE, "text/plain", model, retries=0).status_code == 200:
                    return time.monotonic() - started
            except Exception:  # noqa: BLE001 - not up yet; keep polling until the deadline
                pass
        time.sleep(poll)
    raise TimeoutError(f"TorchServe did not answer within {timeout:.0f} s; see the logs/ directory")


def _pings(client: ServingClient) -> bool:
    try:
        return client.ping()
    except ValueError:  # key_file.json caught half-written by a fast poll
        return False


def curl_example(client: ServingClient) -> str:
    token = client.keys().get("inference", "")
    auth = f' -H "Authorization: Bearer {token}"' if token else ""
    body = json.dumps({"text": PROBE, "key": "review-1"})
    return f"curl -s {client.inference_url}/predictions/sentiment{auth} -H 'Content-Type: application/json' -d '{body}'"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["start", "stop"])
    parser.add_argument("--config", type=Path, default=ROOT / "config.properties")
    parser.add_argument("--workdir", type=Path, default=ROOT)
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.command == "stop":
        stop(args.workdir)
        return 0
    props = read_properties(args.config)
    client = ServingClient(props["inference_address"], props["management_address"], args.workdir / "key_file.json")
    if client.ping():
        print(f"TorchServe already answers on {client.inference_url}; `make stop` first to restart it")
        return 0
    start(args.config, args.workdir)
    waited = wait_until_ready(client, timeout=args.timeout, workdir=args.workdir)
    print(f"TorchServe is serving the sentiment model ({waited:.1f} s). Try:\n\n  {curl_example(client)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
