"""The fleet's command line (serving.fleet says what a fleet is):

python -m serving.fleet start [--replicas 3] [--dir fleet] [--port PORT]   # returns when the proxy answers
python -m serving.fleet status | describe | stop [--dir fleet]
python -m serving.fleet promote model_store/sentiment_2.0.mar             # replica by replica
python -m serving.fleet rollback | scale --workers N | set-default VERSION
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from serving.fleet.lifecycle import start_fleet, stop_fleet
from serving.fleet.rollout import promote, rollback, scale, set_default
from serving.fleet.state import CREDENTIAL, MODEL, FleetState
from serving.fleet.status import describe, status_text
from serving.fleet.supervisor import supervise
from serving.run.server import ROOT


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m serving.fleet", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dir", type=Path, default=ROOT / "fleet", help="the fleet's working directory")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("start", help="start replicas, the proxy and the supervisor")
    p.add_argument("--replicas", type=int, default=3)
    p.add_argument("--port", type=int, help="the proxy's loopback port (default: a free one)")
    p.add_argument("--mar", type=Path, default=ROOT / "model_store" / "sentiment.mar")
    sub.add_parser("stop", help="stop the supervisor, the proxy and every replica")
    sub.add_parser("status", help="the proxy's address and each replica's state")
    sub.add_parser("describe", help="describe the model on every replica")
    p = sub.add_parser("promote", help="roll a new version out, replica by replica")
    p.add_argument("archive", type=Path)
    sub.add_parser("rollback", help="back to the previous default on every replica")
    p = sub.add_parser("scale", help="set the worker count on every replica")
    p.add_argument("--workers", type=int, required=True)
    p = sub.add_parser("set-default", help="make a version the default on every replica")
    p.add_argument("version")
    sub.add_parser("supervise", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    if args.command == "start":
        if not 1 <= args.replicas <= 16:
            parser.error("--replicas: 1 to 16")
        state = start_fleet(args.dir, args.mar, args.replicas, args.port)
        print(f"fleet of {len(state.replicas)} replicas behind {state.url} (credential in {args.dir / CREDENTIAL})")
        print(
            f'\n  curl -s {state.url}/predictions/{MODEL} -H "Authorization: Bearer $(cat {args.dir / CREDENTIAL})"'
            " -H 'Content-Type: text/plain' --data-binary 'A great film.'\n"
        )
        return 0
    if args.command == "supervise":
        supervise(args.dir)
        return 0
    state = FleetState.load(args.dir)
    if args.command == "stop":
        stop_fleet(args.dir)
        print(f"fleet in {args.dir} stopped")
    elif args.command == "status":
        print(status_text(state))
    elif args.command == "describe":
        print(json.dumps(describe(state), indent=2))
    elif args.command == "promote":
        print(f"{MODEL} {promote(state, args.archive)} is the default on every replica")
    elif args.command == "rollback":
        print(f"{MODEL} {rollback(state)} is the default on every replica again")
    elif args.command == "scale":
        scale(state, args.workers)
        print(f"{args.workers} worker(s) per replica")
    elif args.command == "set-default":
        set_default(state, args.version)
        print(f"{MODEL} {args.version} is the default on every replica")
    return 0


if __name__ == "__main__":
    sys.exit(main())
