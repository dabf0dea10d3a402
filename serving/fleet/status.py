"""What the fleet reports of itself: `status` (the proxy, the supervisor, each replica up or down with its
restarts) and `describe` (the model on every replica)."""

from __future__ import annotations

from pathlib import Path

from serving.fleet import proxy
from serving.fleet.state import MODEL, FleetState, replica_alive
from serving.fleet.supervisor import supervisor_status


def describe(state: FleetState) -> dict[str, list[dict]]:
    return {Path(r.workdir).name: r.client().describe(MODEL) for r in state.replicas}


def status_text(state: FleetState) -> str:
    """The proxy, the supervisor and each replica, with the supervisor's restarts and failures of it."""
    supervisor = supervisor_status(state)
    lines = [
        f"proxy {state.url} {'up' if proxy.proxy_pid(Path(state.directory)) else 'DOWN'}; default {state.default}",
        f"supervisor {'up' if supervisor['alive'] else 'DOWN'} (pid {supervisor['pid']}, "
        f"last round {supervisor['seconds_since_round']:.0f} s ago)",
    ]
    for replica in state.replicas:
        name = Path(replica.workdir).name
        record = supervisor["replicas"].get(name, {})
        line = f"{name} {'up' if replica_alive(replica) else 'DOWN'}: {record.get('restarts', 0)} restarts"
        line += f", {record.get('failures', 0)} failed"
        if record.get("failing"):
            line += f" (failing now: {record['last_error']})"
        lines.append(line)
    return "\n".join(lines)
