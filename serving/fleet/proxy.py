"""The fleet's edge proxy: nginx, configured from serving/fleet/nginx.conf, started and stopped by pid.

nginx is Debian's package (`make fleet` installs it when missing). The configuration is rendered into the
fleet's own directory, so several fleets (tests beside `make fleet`) never share a file or a port.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from serving.fleet import oip_edge

logger = logging.getLogger(__name__)
TEMPLATE = Path(__file__).resolve().with_name("nginx.conf")
CONF = "nginx.conf"


@dataclass(frozen=True)
class ProxySettings:
    listen: str  # host:port of the fleet's one public address
    replicas: tuple[str, ...]  # host:port of each replica's inference API
    credential: str  # the bearer token clients present; replicas never see it
    max_body: int  # bytes; no larger than the replicas' max_request_size
    fail_timeout_s: int = 2  # a failed replica sits out this long before it is tried again
    tries: int = 3  # replicas a prediction may be sent to before the client sees the failure
    models: tuple[str, ...] = ()  # the models whose Open Inference Protocol metadata and readiness the edge answers


def nginx() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if not found:
        raise RuntimeError("the fleet needs nginx: `make fleet` installs it (apt-get install -y nginx-light)")
    return found


def render(settings: ProxySettings, directory: Path) -> Path:
    """Write the fleet's nginx.conf (and the temp folders nginx writes bodies to) into `directory`."""
    directory = Path(directory).resolve()
    for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (directory / sub).mkdir(parents=True, exist_ok=True)
    servers = "\n".join(
        f"        server {r} max_fails=1 fail_timeout={settings.fail_timeout_s}s;" for r in settings.replicas
    )
    text = TEMPLATE.read_text()
    for name, value in {
        "DIR": str(directory),
        "LISTEN": settings.listen,
        "SERVERS": servers,
        "CREDENTIAL": settings.credential,
        "MAX_BODY": str(settings.max_body),
        "TRIES": str(settings.tries),
        "OIP_SERVER": oip_edge.server_metadata(),
        "OIP_MODELS": oip_edge.locations(settings.models),
    }.items():
        text = text.replace(f"@@{name}@@", value)
    path = directory / CONF
    path.write_text(text)
    path.chmod(0o600)  # it holds the credential
    return path


def check(directory: Path) -> None:
    """nginx -t: a configuration error is reported before anything starts."""
    _nginx(directory, "-t")


def start(directory: Path, timeout: float = 10.0) -> int:
    """Start nginx on the rendered configuration; returns its master's pid."""
    _nginx(directory)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = proxy_pid(directory)
        if pid is not None:
            return pid
        time.sleep(0.05)
    raise TimeoutError(f"nginx did not write its pid file; see {Path(directory) / 'error.log'}")


def stop(directory: Path, timeout: float = 10.0) -> None:
    """Stop nginx gracefully (in-flight requests finish) and wait until its processes are gone."""
    pid = proxy_pid(directory)
    if pid is None:
        return
    try:
        processes = [psutil.Process(pid), *psutil.Process(pid).children()]
    except psutil.NoSuchProcess:
        return
    _nginx(directory, "-s", "quit")
    _, alive = psutil.wait_procs(processes, timeout=timeout)
    for process in alive:
        process.kill()


def proxy_pid(directory: Path) -> int | None:
    pid_file = Path(directory) / "nginx.pid"
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if psutil.pid_exists(pid) else None


def _nginx(directory: Path, *args: str) -> None:
    directory = Path(directory).resolve()
    cmd = [nginx(), "-p", str(directory), "-c", str(directory / CONF), *args]
    done = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:1] + list(args))} failed: {done.stderr.strip()}")
