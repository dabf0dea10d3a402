"""Start and stop a TorchServe instance and wait until the model answers.

    python -m serving.run.server start [--config config.properties] [--workdir .]
    python -m serving.run.server stop  [--workdir .]

Each instance lives in its own working directory: TorchServe writes key_file.json to its working directory and
its pid file to $TMPDIR, so giving every instance its own pair lets several run side by side (tests, benchmarks).
The server's own output goes to logs/torchserve.out there, never to the caller's terminal or pipe.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from serving.client.api import PROBE, ServingClient

logger = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[2]
SERVER_OUT = "torchserve.out"  # in the instance's logs/: what the frontend and its workers write to stdout/stderr
STOP_TIMEOUT = 60.0  # s for the frontend and its workers to exit after `torchserve --stop`


def read_properties(path: Path) -> dict[str, str]:
    props = {}
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            name, value = line.split("=", 1)
            props[name.strip()] = value.strip()
    return props


def max_request_size(config: Path = ROOT / "config.properties") -> int:
    """The largest request body TorchServe accepts (config.properties' max_request_size): every proxy in front of
    it (the fleet's nginx, the page's server) refuses a larger one itself rather than pass it on."""
    return int(read_properties(config)["max_request_size"])


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
    done = _torchserve(cmd, workdir)
    if done.returncode != 0:
        raise RuntimeError(f"torchserve --start failed ({done.returncode}): {_tail(workdir / 'logs' / SERVER_OUT)}")


def _torchserve(cmd: list[str], workdir: Path) -> subprocess.CompletedProcess:
    """Run a torchserve command with its output appended to the instance's logs/.

    The frontend JVM and its workers inherit these streams and outlive the call: left on the caller's, they would
    hold its pipe open until the server stops (`make serve | tee serve.log` would never return). A session of
    their own keeps them off the caller's terminal, so its Ctrl-C does not reach the server."""
    with open(_log_dir(workdir) / SERVER_OUT, "ab") as out:
        return subprocess.run(
            cmd,
            cwd=workdir,
            env=_env(workdir),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            check=False,
        )


def _tail(path: Path, lines: int = 5) -> str:
    return " | ".join(path.read_text(errors="replace").splitlines()[-lines:])


def stop(workdir: Path, timeout: float = STOP_TIMEOUT) -> int | None:
    """Stop the instance in `workdir` and wait until its frontend and workers have exited.

    Returns the frontend's pid, or None when none was running. `torchserve --stop` only signals the frontend and
    returns at once; a port or the model store would still be in use by the processes winding down.
    """
    workdir = Path(workdir).resolve()
    processes = _server_processes(server_pid(workdir))  # read first: --stop removes the pid file
    _torchserve([torchserve(), "--stop"], workdir)
    if not processes:
        logger.info("no TorchServe running in %s", workdir)
        return None
    frontend = processes[0].pid
    left = _wait_gone(processes, timeout)
    if left:  # a worker stuck in a forward pass or a hung JVM: ours, by pid, so end it rather than leave it
        for process in left:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        _wait_gone(left, 10.0)
        logger.warning("TorchServe (pid %d) did not stop within %.0f s; killed %s", frontend, timeout, left)
    logger.info("TorchServe stopped (pid %d)", frontend)
    return frontend


def _log_dir(workdir: Path) -> Path:
    logs = workdir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    return logs


def _server_processes(pid: int | None) -> list[psutil.Process]:
    """The frontend and its workers (its children), frontend first; [] when it is not running."""
    if pid is None:
        return []
    try:
        frontend = psutil.Process(pid)
        return [frontend, *frontend.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _wait_gone(processes: list[psutil.Process], timeout: float, poll: float = 0.2) -> list[psutil.Process]:
    """Wait until every process has exited; returns those still running at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        left = [p for p in processes if _running(p)]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(poll)


def _running(process: psutil.Process) -> bool:
    """Exited means gone or a zombie (dead, waiting for a parent that is not this process to reap it)."""
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


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


@dataclass
class Instance:
    """A TorchServe started by `launch`: its working directory, settings and a client for its APIs."""

    workdir: Path
    properties: dict[str, str]
    client: ServingClient
    started_in_s: float  # from `torchserve --start` to the first answer

    @property
    def model_store(self) -> Path:
        return Path(self.properties["model_store"])

    @property
    def logs(self) -> Path:
        return self.workdir / "logs"

    @property
    def metrics_url(self) -> str:
        return self.properties["metrics_address"]

    @property
    def token(self) -> str:
        return self.client.keys().get("inference", "")

    def stop(self) -> None:
        stop(self.workdir)


def loaded_models(props: dict[str, str]) -> list[str]:
    """The model names config.properties' load_models registers at start-up ("name=file.mar,...")."""
    return [entry.split("=", 1)[0].strip() for entry in props.get("load_models", "").split(",") if entry.strip()]


def launch(
    workdir: Path,
    mar: Path,
    overrides: dict[str, str] | None = None,
    register: dict | None = None,
    config: Path = ROOT / "config.properties",
    models: dict[str, Path] | None = None,
) -> Instance:
    """TorchServe in its own `workdir` with `config` (the shipped config.properties), every port moved to a free
    loopback one and a model store of its own holding `mar` as sentiment.mar; returns once the model answers.

    Tests and benchmarks start every extra instance here, beside `make serve`'s. With `register`
    (ServingClient.register arguments), the model is registered through the management API after start-up
    instead of by load_models: the only way to get maxBatchDelay 0. `models` adds other archives by name (the
    two-phase tests add sentiment-bigram), each loaded at start-up and answering before this returns."""
    workdir = Path(workdir).resolve()
    store = workdir / "model_store"
    store.mkdir(parents=True, exist_ok=True)
    archives = {"sentiment": Path(mar), **(models or {})}
    for name, path in archives.items():
        if path.resolve() != (store / f"{name}.mar").resolve():
            shutil.copy2(path, store / f"{name}.mar")
    load = ",".join(f"{name}={name}.mar" for name in archives)  # only what this store holds
    props = {**loopback_properties(store), "load_models": load, **(overrides or {})}
    if register is not None:
        props["load_models"] = ""
    config = write_properties(config, props, workdir / "config.properties")
    client = ServingClient(props["inference_address"], props["management_address"], workdir / "key_file.json")
    began = time.monotonic()
    start(config, workdir)
    try:
        wait_until_ready(client, None, workdir=workdir, poll=0.05)
        for model in loaded_models(props):
            wait_until_ready(client, model, workdir=workdir, poll=0.05)
        if register is not None:
            client.register("sentiment.mar", **register)
            wait_until_ready(client, workdir=workdir, poll=0.05)
    except Exception:
        stop(workdir)
        raise
    return Instance(workdir, props, client, time.monotonic() - began)


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
    # each step on its own line as it starts: the frontend and the workers take seconds, and a user sees what runs
    print(f"==> starting TorchServe ({args.config.name}; its output goes to {args.workdir / 'logs'}/)", flush=True)
    start(args.config, args.workdir)
    waited = wait_until_ready(client, None, timeout=args.timeout, workdir=args.workdir)
    models = loaded_models(props)
    print(f"==> TorchServe answers /ping ({waited:.1f} s); waiting for {', '.join(models)} to answer", flush=True)
    for model in models:
        waited += wait_until_ready(client, model, timeout=args.timeout, workdir=args.workdir)
        print(f"    {model} answers ({waited:.1f} s)", flush=True)
    print(summary(props, models, waited, args.workdir))
    print(f"Try:\n\n  {curl_example(client)}\n")
    return 0


# What `make serve` opens, named as config.properties names them
LISTENERS = (
    ("inference", "inference_address"),
    ("management", "management_address"),
    ("metrics", "metrics_address"),
    ("gRPC inference", "grpc_inference"),
    ("gRPC management", "grpc_management"),
)


def listening(props: dict[str, str]) -> list[tuple[str, str]]:
    """(what, host:port) of every listener the settings place (the shipped ones place all five)."""
    out = []
    for what, name in LISTENERS:
        if name.startswith("grpc_"):
            if name + "_port" in props:
                out.append((what, f"{props.get(name + '_address', '')}:{props[name + '_port']}"))
        elif name in props:
            out.append((what, props[name].split("://", 1)[-1]))
    return out


def summary(props: dict[str, str], models: list[str], waited: float, workdir: Path) -> str:
    """The end of `make serve`: what serves, where, and how to use and stop it."""
    ports = ", ".join(f"{what} {address}" for what, address in listening(props))
    return (
        f"TorchServe is serving {', '.join(models)} ({waited:.1f} s).\n"
        f"  listening on: {ports}\n"
        f"  tokens: {workdir / 'key_file.json'}; logs: {workdir / 'logs'}/; stop: make stop"
    )


if __name__ == "__main__":
    sys.exit(main())
