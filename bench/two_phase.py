"""Measure the two-phase trade (`make two-phase-report`) -> bench/results/two_phase.json and two PNG plots.

On IMDB's validation split (where the calibration and the threshold were chosen: the shipped point there is
in-sample) and on SST-2 dev (out of domain, never used to choose anything):
  - accuracy against fraction deferred at every threshold, with random deferral and the oracle (defer exactly
    phase 1's mistakes); phase 1 alone (fp32 TorchScript and the int8 ONNX device model), phase 2 alone, and the
    shipped threshold's point with a 95 % bootstrap interval;
  - on IMDB validation, the shipped rule out of sample: cross-fitted on two fixed halves (a seeded hash of the
    review id), chosen on one and measured on the other, both ways, pooled, with a bootstrap interval that
    chooses again in every draw;
  - calibration (ECE, log loss) before and after the one calibration (calibration.json's slope and intercept).
Then the bundle's sizes beside the TorchScript files'; phase 1's latency per review on one core against a round
trip to phase 2 on loopback (a TorchServe of its own on free ports, one request at a time); and the server work
saved at the shipped threshold.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import logging
import statistics
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from edge.cascade import Server
from edge.device import BUNDLE_FILES, DeviceModel
from model import calibration, threshold
from model.bigram_net import ARTIFACTS as BIGRAM_ARTIFACTS
from model.bigram_net import TORCHSCRIPT_FILE as BIGRAM_FILE
from model.ece import ECE_BINS, expected_calibration_error
from model.infer import TORCHSCRIPT_FILE, load_scorer
from model.logit import is_positive
from model.text import token_ids
from serving.build.bundle import ARTIFACTS, DIST, BundleConfig, evaluation_splits, torch_logits
from serving.run.server import launch

logger = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
PHASE2 = "sentiment-bigram"
LATENCY_REVIEWS = 1000  # phase 1, one review per call
ROUND_TRIPS = 300  # phase 2, one review per request: bounded load on a shared machine
HALVES_SEED = 0  # the cross-fit's halves: fixed, so that every run judges the rule on the same split


def split_report(
    name: str, labels, fp32, int8, phase2, slope: float, intercept: float, shipped: float, ids=None, tolerance=0.0
) -> dict:
    """The split's figures; with `ids`, the shipped rule (`tolerance`) cross-fitted on its two halves too."""
    p_raw, p_cal = calibration.sigmoid(int8), calibration.sigmoid(slope * int8 + intercept)
    conf = np.maximum(p_cal, 1 - p_cal)
    # the device's label is its calibrated probability's, as edge.device answers
    c1, c2 = (p_cal >= 0.5).astype(int) == labels, is_positive(phase2).astype(int) == labels
    points = threshold.cascade_curve(conf, c1, c2)
    routed = threshold.deferred(conf, shipped)
    cascade_correct = np.where(routed, c2, c1)
    low, high = threshold.bootstrap_interval(cascade_correct)
    return {
        "split": name,
        "reviews": len(labels),
        "phase1_fp32_accuracy": round(float((is_positive(fp32).astype(int) == labels).mean()), 4),
        "phase1_int8_accuracy": round(float(c1.mean()), 4),
        "phase2_accuracy": round(float(c2.mean()), 4),
        "label_flip_rate_int8_vs_fp32": round(float((is_positive(fp32) != is_positive(int8)).mean()), 5),
        "ece_before": round(expected_calibration_error(p_raw, labels), 4),
        "ece_after": round(expected_calibration_error(p_cal, labels), 4),
        "log_loss_before": round(calibration.log_loss(p_raw, labels), 4),
        "log_loss_after": round(calibration.log_loss(p_cal, labels), 4),
        "shipped": {
            "threshold": shipped,
            "deferred": round(float(routed.mean()), 4),
            "accuracy": round(float(cascade_correct.mean()), 4),
            "accuracy_95": [round(low, 4), round(high, 4)],
            "server_requests_saved": round(1 - float(routed.mean()), 4),
        },
        "oracle": [[round(d, 4), round(a, 4)] for d, a in threshold.oracle_curve(c1, c2)],
        "out_of_sample": out_of_sample(conf, c1, c2, ids, tolerance) if ids is not None else None,
        "curve": [[round(p.threshold, 5), round(p.deferred, 5), round(p.accuracy, 5)] for p in _thin(points)],
        "_conf": conf,
        "_labels": labels,
        "_p": (p_raw, p_cal),
    }


def out_of_sample(conf, c1, c2, ids: list[str], tolerance: float) -> dict:
    """The shipped rule chosen on each fixed half of the split and measured on the other, pooled."""
    first = threshold.halves(ids, HALVES_SEED)
    fit = threshold.cross_fit(conf, c1, c2, first, tolerance)
    interval = threshold.cross_fit_interval(conf, c1, c2, first, tolerance)
    return {
        "method": "cross-fit: threshold chosen by the shipped rule on one half, measured on the other, both ways",
        "threshold_on_the_whole_split": round(threshold.select_threshold(conf, c1, c2, tolerance).threshold, 6),
        "halves": [int(first.sum()), int((~first).sum())],
        "halves_seed": HALVES_SEED,
        "thresholds": [round(t, 6) for t in fit.thresholds],
        "accuracy": round(fit.accuracy, 4),
        "accuracy_95": [round(x, 4) for x in interval["accuracy"]],
        "deferred": round(fit.deferred, 4),
        "deferred_95": [round(x, 4) for x in interval["deferred"]],
        "interval": "2,000 bootstrap draws, reviews resampled within each half, both thresholds chosen again",
    }


def _thin(points: list[threshold.Point], n: int = 400) -> list[threshold.Point]:
    """At most about `n` points, evenly over the deferral, always with both ends."""
    step = max(1, len(points) // n)
    return [*points[:-1:step], points[-1]]


def sizes(bundle: Path) -> dict:
    def entry(path: Path) -> dict:
        raw = path.read_bytes()
        return {"bytes": len(raw), "gzip_bytes": len(gzip.compress(raw, 9))}

    out = {name: entry(bundle / name) for name in BUNDLE_FILES}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=9) as tar:
        for name in BUNDLE_FILES:
            tar.add(bundle / name, arcname=name)
    out["bundle"] = {"bytes": sum(out[n]["bytes"] for n in BUNDLE_FILES), "tar_gzip_bytes": len(buffer.getvalue())}
    out["sentiment.pt (TorchScript, served)"] = entry(ARTIFACTS / TORCHSCRIPT_FILE)
    out["bigram.pt (TorchScript, phase 2)"] = entry(BIGRAM_ARTIFACTS / BIGRAM_FILE)
    return out


def percentiles(seconds: list[float]) -> dict:
    ms = np.array(seconds) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 3), "p99_ms": round(float(np.percentile(ms, 99)), 3)}


def phase1_latency(bundle: Path, texts: list[str]) -> dict:
    device = DeviceModel(bundle, threads=1)
    for text in texts[:50]:
        device.score([text])
    times = []
    for text in texts:
        started = time.perf_counter()
        device.score([text])
        times.append(time.perf_counter() - started)
    mean_chars = round(statistics.mean(map(len, texts)))
    return {**percentiles(times), "reviews": len(texts), "threads": 1, "mean_chars": mean_chars}


def phase2_round_trip(texts: list[str]) -> dict:
    """One review per request to sentiment-bigram on a TorchServe of its own, loopback, as the device sends it."""
    with tempfile.TemporaryDirectory(prefix="two-phase-") as tmp:
        srv = launch(
            Path(tmp),
            ROOT / "model_store" / "sentiment.mar",
            {"load_models": f"{PHASE2}={PHASE2}.mar"},
            models={PHASE2: ROOT / "model_store" / f"{PHASE2}.mar"},
        )
        try:
            server = Server(srv.properties["inference_address"], PHASE2, srv.token, timeout=30)
            for text in texts[:20]:
                server.predict([{"text": text}])
            times = []
            for text in texts:
                started = time.perf_counter()
                server.predict([{"text": text}])
                times.append(time.perf_counter() - started)
        finally:
            srv.stop()
    return {**percentiles(times), "requests": len(texts), "workers": 1}


def plot(reports: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(reports), figsize=(5.5 * len(reports), 4.2))
    for ax, r in zip(axes, reports, strict=True):
        curve = np.array(r["curve"])
        ax.plot(curve[:, 1], curve[:, 2], label="cascade (every threshold)", color="C0")
        a1, a2 = r["phase1_int8_accuracy"], r["phase2_accuracy"]
        ax.plot([0, 1], [a1, a2], "--", color="grey", label="random deferral")
        oracle = np.array(r["oracle"])
        ax.plot(oracle[:, 0], oracle[:, 1], ":", color="C2", label="oracle (defer phase 1's mistakes)")
        ax.axhline(a2, color="C3", lw=0.8, label=f"phase 2 alone {a2:.4f}")
        ax.axhline(a1, color="C1", lw=0.8, label=f"phase 1 int8 {a1:.4f} (fp32 {r['phase1_fp32_accuracy']:.4f})")
        s, cross = r["shipped"], r.get("out_of_sample")
        ax.errorbar(
            [s["deferred"]],
            [s["accuracy"]],
            yerr=[[s["accuracy"] - s["accuracy_95"][0]], [s["accuracy_95"][1] - s["accuracy"]]],
            fmt="o",
            color="k",
            capsize=4,
            label=f"shipped threshold {s['threshold']:.3f}: {s['deferred']:.1%} deferred"
            + (" (chosen here: in-sample)" if cross else ""),
        )
        if cross:
            ax.errorbar(
                [cross["deferred"]],
                [cross["accuracy"]],
                xerr=[[cross["deferred"] - cross["deferred_95"][0]], [cross["deferred_95"][1] - cross["deferred"]]],
                yerr=[[cross["accuracy"] - cross["accuracy_95"][0]], [cross["accuracy_95"][1] - cross["accuracy"]]],
                fmt="s",
                color="C4",
                capsize=4,
                label=f"the rule cross-fitted (out of sample): {cross['deferred']:.1%} deferred",
            )
        ax.set(xlabel="fraction deferred to phase 2", ylabel="accuracy", title=f"{r['split']} ({r['reviews']})")
        ax.set_ylim(min(a1, a2) - 0.03, max(oracle[:, 1].max(), a2) + 0.01)
        ax.legend(fontsize=7, loc="best", framealpha=0.8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_calibration(reports: list[dict], path: Path, bins: int = ECE_BINS) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(reports), figsize=(5 * len(reports), 4))
    edges = np.linspace(0.5, 1.0, bins + 1)
    for ax, r in zip(axes, reports, strict=True):
        for p, label, color in ((r["_p"][0], "raw", "C1"), (r["_p"][1], "calibrated", "C0")):
            conf = np.maximum(p, 1 - p)
            correct = (p >= 0.5).astype(int) == r["_labels"]
            which = np.clip(np.digitize(conf, edges[1:-1]), 0, bins - 1)
            xs = [conf[which == b].mean() for b in range(bins) if (which == b).any()]
            ys = [correct[which == b].mean() for b in range(bins) if (which == b).any()]
            ece = r["ece_before"] if label == "raw" else r["ece_after"]
            ax.plot(xs, ys, "o-", color=color, label=f"{label} (ECE {ece:.4f})")
        ax.plot([0.5, 1], [0.5, 1], ":", color="grey")
        ax.set(xlabel="confidence max(p, 1-p)", ylabel="accuracy", title=f"phase 1 calibration: {r['split']}")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run(bundle: Path, out: Path, latency: bool = True) -> dict:
    device = DeviceModel(bundle, threads=2)
    served = load_scorer(ARTIFACTS)
    phase2 = torch.jit.load(str(BIGRAM_ARTIFACTS / BIGRAM_FILE), map_location="cpu").eval()
    settings = device.settings
    tolerance = BundleConfig().tolerance
    reports = []
    for split in evaluation_splits():
        ids = token_ids(served.tokenizer, split.texts)  # truncated at the tokenizer's own max_tokens
        reports.append(
            split_report(
                split.name,
                split.labels,
                torch_logits(served.model, ids),
                device.logits(ids),
                torch_logits(phase2, ids),
                settings.slope,
                settings.intercept,
                settings.threshold,
                split.ids if split.name == "imdb_validation" else None,  # the split the threshold was chosen on
                tolerance,
            )
        )
    result = {
        "bundle": {
            "model_version": settings.model_version,
            "calibration": {"slope": settings.slope, "intercept": settings.intercept},
        },
        "splits": [{k: v for k, v in r.items() if not k.startswith("_")} for r in reports],
        "sizes": sizes(bundle),
        "audit_rate": settings.audit_rate,
    }
    val = reports[0]["shipped"]
    result["server_work_saved"] = {
        "imdb_validation_without_audit": val["server_requests_saved"],
        "imdb_validation_with_audit": round(val["server_requests_saved"] * (1 - settings.audit_rate), 4),
    }
    if latency:
        texts = evaluation_splits()[0].texts
        result["latency"] = {
            "phase1_device_one_core": phase1_latency(bundle, texts[:LATENCY_REVIEWS]),
            "phase2_loopback_round_trip": phase2_round_trip(texts[:ROUND_TRIPS]),
        }
    out.mkdir(parents=True, exist_ok=True)
    (out / "two_phase.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(reports, out / "two_phase.png")
    plot_calibration(reports, out / "two_phase_calibration.png")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, default=DIST)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--no-latency", action="store_true", help="skip the latency runs (no TorchServe started)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(2)
    result = run(args.bundle, args.out, latency=not args.no_latency)
    print(json.dumps({k: v for k, v in result.items() if k != "splits"}, indent=2))
    for r in result["splits"]:
        print(r["split"], {k: v for k, v in r.items() if k not in ("curve", "oracle")})


if __name__ == "__main__":
    main()
