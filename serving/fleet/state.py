"""The fleet's record on disk and what of it is alive: fleet.json (the replicas' addresses and working directories,
the proxy's address, the versions every model store keeps, the default a restarted replica serves, the
supervisor's pid) and the fleet's one credential, both in the fleet's directory."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil

from serving.client.api import HISTORY, ServingClient
from serving.run.server import server_pid

STATE = "fleet.json"
CREDENTIAL = "credential"
MODEL = "sentiment"


@dataclass
class ReplicaState:
    workdir: str
    inference: str  # http://127.0.0.1:port
    management: str

    @property
    def address(self) -> str:
        return self.inference.removeprefix("http://")

    def client(self, **kwargs) -> ServingClient:
        history = Path(self.workdir) / HISTORY  # each replica's defaults, for its rollback
        return ServingClient(self.inference, self.management, key_file=None, history_file=history, **kwargs)


@dataclass
class FleetState:
    directory: str
    listen: str  # the proxy's host:port: the fleet's one address for clients
    replicas: list[ReplicaState]
    archives: dict[str, str] = field(default_factory=dict)  # version -> archive file name in every model store
    default: str = "1.0"  # the version a restarted replica serves
    supervisor_pid: int | None = None

    @property
    def url(self) -> str:
        return f"http://{self.listen}"

    @property
    def credential(self) -> str:
        return (Path(self.directory) / CREDENTIAL).read_text().strip()

    def save(self) -> None:
        path = Path(self.directory) / STATE
        partial = path.with_suffix(".tmp")
        partial.write_text(json.dumps(asdict(self), indent=2) + "\n")
        partial.replace(path)  # the supervisor reads it while the CLI writes it

    @classmethod
    def load(cls, directory: Path) -> FleetState:
        path = Path(directory) / STATE
        if not path.exists():
            raise FileNotFoundError(f"no fleet in {directory}: `make fleet` starts one")
        raw = json.loads(path.read_text())
        raw["replicas"] = [ReplicaState(**r) for r in raw["replicas"]]
        return cls(**raw)


def replica_alive(replica: ReplicaState) -> bool:
    pid = server_pid(Path(replica.workdir))
    return pid is not None and process_alive(pid)


def process_alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:  # gone between the pid file and this look, or not ours to see
        return False
