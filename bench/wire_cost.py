"""The worker protocol alone: CPU per batch of TorchServe's reader and writer against handler.wire's, in process.

    python -m bench.wire_cost [--batch 32] [--rounds 7] [--batches 2000]

A batch as the frontend sends it at c=64 with sentences (32 single-review JSON requests, each with the HTTP
headers wrk sends and the frontend forwards) goes through a real socket pair from a writer thread; each round
reads `batches` of them with one reader, then with the other, and writes as many answers with each writer.
CPU time of this process (the writer thread's share is the same for both), medians of the rounds, alternating.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import struct
import sys
import threading
import time

from ts.context import Context, RequestProcessor
from ts.protocol import otf_message_handler as torchserve

from bench.reviews import review_mix, single_bodies
from handler import wire

HEADERS = {  # what wrk's load.lua sends, as the frontend forwards it (lower-case names)
    "host": "127.0.0.1:8080",
    "authorization": "Bearer " + "x" * 32,
    "content-type": "application/json",
    "content-length": "120",
}


def _field(data: bytes) -> bytes:
    return struct.pack("!i", len(data)) + data


def batch_message(bodies: list[bytes]) -> bytes:
    out = [b"I"]
    for i, body in enumerate(bodies):
        out.append(_field(f"{i:08d}-0000-4000-8000-000000000000".encode()))
        for name, value in HEADERS.items():
            out += (_field(name.encode()), _field(value.encode()))
        out.append(struct.pack("!i", -1))
        out += (_field(b"body"), _field(b"application/json"), _field(body), struct.pack("!i", -1))
    out.append(struct.pack("!i", -1))
    return b"".join(out)


def read_cpu(reader, message: bytes, batches: int) -> float:
    """CPU seconds to read `batches` copies of `message` from a socket pair."""
    left, right = socket.socketpair()
    sender = threading.Thread(target=lambda: [left.sendall(message) for _ in range(batches)])
    sender.start()
    began = time.process_time()
    for _ in range(batches):
        reader(right)
    spent = time.process_time() - began
    sender.join()
    left.close()
    right.close()
    return spent


def write_cpu(writer, n: int, batches: int) -> float:
    answers = [json.dumps({"key": f"r{i}", "label": "positive", "model_version": "1.0"}).encode() for i in range(n)]
    ids = {i: f"{i:08d}-0000-4000-8000-000000000000" for i in range(n)}
    began = time.process_time()
    for _ in range(batches):
        context = Context("sentiment", "/m", {}, n, None, "0.12.0")
        context.request_processor = [RequestProcessor({}) for _ in range(n)]
        for i in range(n):
            context.set_response_status(200, "OK", i)
            context.set_response_content_type(i, "application/json")
        writer(answers, ids, "Prediction success", 200, context)
    return time.process_time() - began


def measure(batch: int = 32, rounds: int = 7, batches: int = 2000) -> dict:
    message = batch_message(single_bodies(review_mix("sentence", batch)))
    ours_writer = lambda *a: wire.encode_predict_response(*a, fallback=torchserve.create_predict_response)  # noqa: E731
    cells: dict[str, list[float]] = {"read_torchserve": [], "read_wire": [], "write_torchserve": [], "write_wire": []}
    for _ in range(rounds):
        cells["read_torchserve"].append(read_cpu(torchserve.retrieve_msg, message, batches))
        cells["read_wire"].append(read_cpu(wire.Decoder(), message, batches))
        cells["write_torchserve"].append(write_cpu(torchserve.create_predict_response, batch, batches))
        cells["write_wire"].append(write_cpu(ours_writer, batch, batches))
    per_request = {k: 1e6 * statistics.median(v) / (batches * batch) for k, v in cells.items()}
    return {
        "batch": batch,
        "message_bytes": len(message),
        "cpu_us_per_request": {k: round(v, 2) for k, v in per_request.items()},
        "read_ratio": round(per_request["read_wire"] / per_request["read_torchserve"], 3),
        "write_ratio": round(per_request["write_wire"] / per_request["write_torchserve"], 3),
        "note": "the write cells include building the context both writers read, the same for both",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--batches", type=int, default=2000)
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.batch, args.rounds, args.batches), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
