"""Starting and stopping a fleet: its replicas, the proxy in front of them, and the supervisor.

Each replica is a whole TorchServe (serving.run.server.launch) in its own working directory, on free loopback ports,
with token authorization off: the proxy is the only way in from clients, it checks the fleet's one credential,
and replicas bound to a private address (loopback here, a pod address behind a NetworkPolicy on a cluster) are
reachable by nothing else that serves clients.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil

from serving.fleet import proxy
from serving.fleet.state import CREDENTIAL, MODEL, STATE, FleetState, ReplicaState, replica_alive
from serving.fleet.supervisor import start_supervisor
from serving.run.server import free_ports, launch, max_request_size, stop

REPLICA_OVERRIDES = {
    # The proxy authenticates clients; each replica would otherwise mint tokens of its own that the proxy could not
    # know. Replicas listen on a private address that only the proxy is meant to reach.
    "disable_token_authorization": "true",
}


def start_fleet(
    directory: Path, mar: Path, replicas: int = 3, port: int | None = None, supervise: bool = True
) -> FleetState:
    """Replicas, then the proxy, then the supervisor; returns once a prediction through the proxy answers."""
    directory = Path(directory).resolve()
    if (directory / STATE).exists() and _alive(FleetState.load(directory)):
        raise RuntimeError(f"a fleet already runs in {directory}: `make fleet-stop` first")
    directory.mkdir(parents=True, exist_ok=True)
    credential = directory / CREDENTIAL
    credential.write_text(secrets.token_urlsafe(32) + "\n")
    credential.chmod(0o600)
    started: list[ReplicaState] = []
    try:
        with ThreadPoolExecutor(replicas) as pool:  # each start waits on its own JVM and workers
            launches = [
                pool.submit(launch, directory / f"replica-{i}", mar, REPLICA_OVERRIDES) for i in range(replicas)
            ]
            for future in launches:
                with contextlib.suppress(Exception):  # one that failed is raised again below
                    instance = future.result()
                    started.append(ReplicaState(str(instance.workdir), *_addresses(instance.properties)))
            for future in launches:
                future.result()
        listen = f"127.0.0.1:{port or free_ports(1)[0]}"
        state = FleetState(str(directory), listen, started, archives={"1.0": "sentiment.mar"})
        start_proxy(state)
        state.save()
        if supervise:
            state.supervisor_pid = start_supervisor(directory)
            state.save()
        wait_until_proxied(state)
        if supervise and not psutil.pid_exists(state.supervisor_pid):
            raise RuntimeError(f"the fleet's supervisor exited; see {directory / 'supervisor.log'}")
    except Exception:
        for replica in started:
            stop(Path(replica.workdir))
        proxy.stop(directory)
        raise
    return state


def start_proxy(state: FleetState) -> None:
    max_body = max_request_size()
    settings = proxy.ProxySettings(
        state.listen, tuple(r.address for r in state.replicas), state.credential, max_body, models=(MODEL,)
    )
    proxy.render(settings, Path(state.directory))
    proxy.check(Path(state.directory))
    proxy.start(Path(state.directory))


def stop_fleet(directory: Path) -> None:
    """Supervisor first (so that it restarts nothing), then the proxy, then every replica, each waited for."""
    state = FleetState.load(directory)
    if state.supervisor_pid and psutil.pid_exists(state.supervisor_pid):
        os.kill(state.supervisor_pid, signal.SIGTERM)
        psutil.wait_procs([psutil.Process(state.supervisor_pid)], timeout=10)
    proxy.stop(Path(state.directory))
    for replica in state.replicas:
        stop(Path(replica.workdir))
    state.supervisor_pid = None
    state.save()


def wait_until_proxied(state: FleetState, timeout: float = 60.0) -> None:
    """Until a prediction through the proxy answers 200."""
    import requests

    headers = {"Authorization": f"Bearer {state.credential}", "Content-Type": "text/plain"}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(requests.RequestException):
            if requests.post(f"{state.url}/predictions/{MODEL}", data=b"fine", headers=headers, timeout=5).ok:
                return
        time.sleep(0.2)
    raise TimeoutError(f"the fleet's proxy did not answer within {timeout:.0f} s; see {state.directory}")


def _addresses(props: dict[str, str]) -> tuple[str, str]:
    return props["inference_address"], props["management_address"]


def _alive(state: FleetState) -> bool:
    return proxy.proxy_pid(Path(state.directory)) is not None or any(replica_alive(r) for r in state.replicas)
