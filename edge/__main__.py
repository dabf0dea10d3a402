"""Two-phase prediction from the command line, on the device bundle:

    python -m edge predict --input reviews.jsonl --output answers.jsonl [--confidence C] [--server URL]

Each input line is a JSON instance as the server takes them ({"key": ..., "text": ...}, or a string); each
output line is its answer, in the same order: a prediction with `phase` (1: the device, 2: the server) and
`provisional`, or the error object the server would give that line (with the line's key when it was valid).
Blank lines are skipped. The key field is `key`, as online and in the batch job; `--key-field id` reads another
(the answer still calls it `key`). Lines without it are answered without a key, and counted and reported: a
misnamed key field never passes silently as answers keyed null.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from edge.cascade import Server, TwoPhaseClient, read_token
from edge.device import DeviceModel
from handler.codec import dumps, loads
from handler.errors import ServingError

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "dist" / "edge"
KEY = "key"  # the key field of a line, as online and in the batch job (--key-field names another)
LINES_PER_CALL = 256  # reviews scored (and deferred) together: one server request per block at most


def parse_line(line: str) -> object | ServingError:
    try:
        return loads(line)  # a numeric key keeps its text, to come back as sent
    except (ValueError, RecursionError):
        return ServingError("invalid_json", "the line is not valid JSON")


def keyed(obj: object, key_field: str) -> object:
    """The line's instance with its key under `key`, as the server takes it (the line's own `key` field, if
    it has one besides `key_field`, is not the key and is dropped)."""
    if key_field == KEY or not isinstance(obj, dict):
        return obj
    instance = {name: value for name, value in obj.items() if name not in (key_field, KEY)}
    if key_field in obj:
        instance[KEY] = obj[key_field]
    return instance


def predict_file(client: TwoPhaseClient, source, sink, key_field: str = KEY) -> dict[str, int]:
    """Answer every non-blank line of `source` into `sink`, in blocks; returns counts by phase and outcome, and
    of lines without the key field (`without_key`)."""
    counts = {"lines": 0, "phase1": 0, "phase2": 0, "provisional": 0, "errors": 0, "audited": 0, "without_key": 0}

    def flush(block: list[object | ServingError]) -> None:
        valid = [obj for obj in block if not isinstance(obj, ServingError)]
        answers = iter(client.predict_instances(valid))
        for obj in block:
            answer = (
                {**obj.body(), "phase": 1, "provisional": False} if isinstance(obj, ServingError) else next(answers)
            )
            sink.write(dumps(answer) + b"\n")
            counts["lines"] += 1
            counts["errors" if "error" in answer else f"phase{answer['phase']}"] += 1
            counts["provisional"] += bool(answer.get("provisional"))
            counts["audited"] += "audit" in answer

    block: list[object | ServingError] = []
    for line in source:
        if line.strip():
            obj = parse_line(line)
            counts["without_key"] += not isinstance(obj, dict) or obj.get(key_field) is None
            block.append(keyed(obj, key_field))
        if len(block) == LINES_PER_CALL:
            flush(block)
            block = []
    if block:
        flush(block)
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("predict", help="answer a JSONL file of reviews, deferring the uncertain ones to the server")
    p.add_argument("--input", type=Path, required=True, help="JSONL: one {'key': ..., 'text': ...} per line")
    p.add_argument("--output", type=Path, required=True, help="JSONL: one answer per input line, same order")
    p.add_argument("--confidence", type=float, help="the threshold; default: the bundle's (0.5 never defers, 1 always)")
    p.add_argument("--server", default="http://127.0.0.1:8080", help="TorchServe's inference URL (%(default)s)")
    p.add_argument("--model", help="the phase-2 model on the server (default: the bundle's)")
    p.add_argument("--key-file", type=Path, default=Path("key_file.json"), help="TorchServe's key file (%(default)s)")
    p.add_argument("--audit-rate", type=float, help="share of confident answers also sent to phase 2 (bundle's)")
    p.add_argument("--key-field", default=KEY, help="each line's key field (%(default)s, as online and in batch)")
    p.add_argument("--timeout", type=float, help="seconds to wait for phase 2 (default: the bundle's phase2_timeout_s)")
    p.add_argument("--bundle", type=Path, default=BUNDLE, help="the device bundle (%(default)s; make edge)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    try:
        device = DeviceModel(args.bundle)
        server = Server(
            args.server,
            args.model or device.settings.phase2_model,
            read_token(args.key_file),
            device.settings.phase2_timeout_s if args.timeout is None else args.timeout,
        )
        client = TwoPhaseClient(device, server, args.confidence, args.audit_rate)
        with open(args.input, encoding="utf-8") as source, open(args.output, "wb") as sink:
            counts = predict_file(client, source, sink, args.key_field)
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(
        f"{counts['lines']} answers: {counts['phase1']} by the device, {counts['phase2']} by the server, "
        f"{counts['provisional']} provisional, {counts['errors']} errors, {counts['audited']} audited",
        file=sys.stderr,
    )
    if counts["without_key"]:
        print(
            f"warning: {counts['without_key']} of {counts['lines']} lines have no key field {args.key_field!r} (or it"
            " is null): their answers carry no key (--key-field names another field)",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
