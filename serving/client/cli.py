"""The command line over serving.client.api: `python -m serving.client`.

    python -m serving.client predict "The film was great."      # or --key K, or several texts (instances)
    python -m serving.client promote sentiment_2.0.mar  # register (1 worker), check it answers, default
    python -m serving.client rollback sentiment         # the previous default again; drop this one
    python -m serving.client register sentiment_2.0.mar --initial-workers 1
    python -m serving.client scale sentiment --min 2 --max 2
    python -m serving.client describe sentiment
    python -m serving.client set-default sentiment 2.0
    python -m serving.client unregister sentiment [2.0]

Version changes are said in words; everything else prints TorchServe's JSON answer.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import requests

from serving.client.api import ROOT, Promotion, Removal, ServingAPIError, ServingClient, VersionError


def _workers(n: int) -> str:
    return f"{n} worker" if n == 1 else f"{n} workers"


def promoted_line(p: Promotion) -> str:
    done = f"{p.model} {p.version} registered with {_workers(p.workers)} and made the default"
    if p.previous is None:
        return done
    return f"{done}; previous default {p.previous} stays registered for `rollback`"


def rolled_back_line(r: Removal) -> str:
    return f"{r.model} {r.version} unregistered; the default is {r.default} again"


def removed_line(r: Removal) -> str:
    if not r.remaining:
        return f"{r.model} {r.version} unregistered; no version of {r.model} remains"
    return f"{r.model} {r.version} unregistered; registered now: {', '.join(r.remaining)}, default {r.default}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m serving.client", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--inference-url", default="http://127.0.0.1:8080")
    parser.add_argument("--management-url", default="http://127.0.0.1:8081")
    parser.add_argument("--key-file", type=Path, default=ROOT / "key_file.json")
    parser.add_argument("--model", default="sentiment")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("predict", help="score one or more reviews")
    p.add_argument("texts", nargs="+")
    p.add_argument("--key")
    p = sub.add_parser("promote", help="register a new version (1 worker), check it answers, make it the default")
    p.add_argument("url", help="an archive in the model store, e.g. sentiment_2.0.mar (make archive VERSION=2.0)")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for its first answer")
    p = sub.add_parser("rollback", help="make the previous default the default again and unregister this one")
    p.add_argument("name")
    p = sub.add_parser("register", help="register an archive that is in the model store (not made the default)")
    p.add_argument("url")
    p.add_argument("--initial-workers", type=int, default=1)
    p = sub.add_parser("scale", help="set a model's worker count")
    p.add_argument("name")
    p.add_argument("--min", type=int, required=True)
    p.add_argument("--max", type=int)
    p.add_argument("--version")
    p = sub.add_parser("describe", help="describe a model's versions and workers")
    p.add_argument("name")
    p.add_argument("--version")
    p = sub.add_parser("set-default", help="make a version the default")
    p.add_argument("name")
    p.add_argument("version")
    p = sub.add_parser("unregister", help="unregister a model (or one version)")
    p.add_argument("name")
    p.add_argument("version", nargs="?")
    sub.add_parser("list", help="list registered models")
    args = parser.parse_args(argv)

    client = ServingClient(args.inference_url, args.management_url, args.key_file)
    try:
        if args.command in ("promote", "rollback", "register", "unregister"):  # version changes: said in words
            print(_change_versions(client, args))
            return 0
        if args.command == "predict":
            if len(args.texts) == 1:
                result = client.predict(args.texts[0], args.key, model=args.model)
            else:
                result = client.predict_many([{"text": t} for t in args.texts], model=args.model)
        elif args.command == "scale":
            result = client.scale(args.name, args.min, args.max, args.version)
        elif args.command == "describe":
            result = client.describe(args.name, args.version)
        elif args.command == "set-default":
            result = client.set_default(args.name, args.version)
        else:
            result = client.list_models()
    except (ServingAPIError, VersionError, TimeoutError, requests.RequestException) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0


def _change_versions(client: ServingClient, args: argparse.Namespace) -> str:
    if args.command == "promote":
        return promoted_line(client.promote(args.url, args.model, args.workers, args.timeout))
    if args.command == "rollback":
        return rolled_back_line(client.rollback(args.name))
    if args.command == "unregister":
        return removed_line(client.unregister_version(args.name, args.version))
    version = client.register_version(args.url, args.model, args.initial_workers)
    workers = _workers(client.worker_count(args.model, version))
    return f"{args.model} {version} registered with {workers}; the default is {client.default_version(args.model)}"


if __name__ == "__main__":
    sys.exit(main())
