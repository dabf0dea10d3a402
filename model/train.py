"""Train the classifier on both registers, IMDB's long reviews and SST-2's short phrases:
`python -m model.train [--data-dir DIR] [--out model/artifacts]`.

The kept epoch is the one with the lowest validation loss summed over IMDB's validation split and SST-2 dev, so
neither register is sacrificed to the other; both accuracies are reported apart."""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from model import baseline
from model.config import ARTIFACTS, ModelConfig
from model.data import DATA_DIR, SST2_DEV, read_sst2, training_rows
from model.logit import is_positive
from model.net import SentimentNet
from model.text import UNK, build_tokenizer, pack, save_tokenizer, token_ids

logger = logging.getLogger(__name__)


def evaluate(net: SentimentNet, ids: list[list[int]], labels: list[int], batch_size: int = 512) -> tuple[float, float]:
    """(mean BCE loss, accuracy) of `net` in eval mode."""
    net.eval()
    total_loss, correct = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(ids), batch_size):
            logits = net(*pack(ids[start : start + batch_size]))
            target = torch.tensor(labels[start : start + batch_size], dtype=torch.float32)
            total_loss += F.binary_cross_entropy_with_logits(logits, target, reduction="sum").item()
            correct += (is_positive(logits).long() == target.long()).sum().item()
    return total_loss / len(ids), correct / len(ids)


def train(cfg: ModelConfig, data_dir: Path, out: Path, extra_rows: list[dict] | None = None) -> dict:
    """Train on IMDB's training split and SST-2 train (weighted), plus `extra_rows` ({"text", "label"}: labeled
    traffic, for a retrain, at an IMDB review's weight)."""
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    train_rows, val_rows = training_rows(data_dir, cfg.val_every, cfg.sst2_weight)
    train_rows += [{"weight": 1.0, "register": "extra", **r} for r in extra_rows or []]
    n_sst2 = sum(1 for r in train_rows if r["register"] == "sst2")
    logger.info("%d training rows (%d SST-2), %d validation reviews", len(train_rows), n_sst2, len(val_rows))

    tokenizer = build_tokenizer((r["text"] for r in train_rows), cfg.vocab_size, cfg.min_frequency, cfg.max_tokens)
    cfg = ModelConfig(**{**cfg.__dict__, "vocab_size": len(tokenizer)})  # the real size, if the corpus is small
    train_ids = token_ids(tokenizer, [r["text"] for r in train_rows])
    val_ids = token_ids(tokenizer, [r["text"] for r in val_rows])
    train_labels = [int(r["label"]) for r in train_rows]
    val_labels = [int(r["label"]) for r in val_rows]
    train_weights = [float(r["weight"]) for r in train_rows]
    sst_texts, sst_labels = read_sst2(data_dir / SST2_DEV)
    sst_ids = token_ids(tokenizer, sst_texts)

    net = SentimentNet(cfg)
    optimizer = torch.optim.Adam(net.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    history, best = [], (math.inf, None, -1)
    order = list(range(len(train_ids)))
    for epoch in range(1, cfg.epochs + 1):
        net.train()
        random.shuffle(order)
        running = 0.0
        bar = tqdm(range(0, len(order), cfg.batch_size), desc=f"epoch {epoch}/{cfg.epochs}", unit="batch")
        for start in bar:
            idx = order[start : start + cfg.batch_size]
            logits = net(*pack([train_ids[i] for i in idx]))
            target = torch.tensor([train_labels[i] for i in idx], dtype=torch.float32)
            weight = torch.tensor([train_weights[i] for i in idx])
            loss = (F.binary_cross_entropy_with_logits(logits, target, reduction="none") * weight).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            running += loss.item() * len(idx)
        val_loss, val_acc = evaluate(net, val_ids, val_labels)
        sst_loss, sst_acc = evaluate(net, sst_ids, sst_labels) if sst_ids else (0.0, 0.0)
        history.append(
            {
                "epoch": epoch,
                "train_loss": running / len(order),
                "val_loss": val_loss,
                "val_accuracy": val_acc,
                "sst2_dev_loss": sst_loss,
                "sst2_dev_accuracy": sst_acc,
            }
        )
        logger.info(
            "epoch %d: train_loss %.4f val_loss %.4f val_accuracy %.4f sst2_dev_loss %.4f sst2_dev_accuracy %.4f",
            *history[-1].values(),
        )
        if val_loss + sst_loss < best[0]:  # the lowest loss over both registers, as Keras' early stopping on one
            best = (val_loss + sst_loss, {k: v.clone() for k, v in net.state_dict().items()}, epoch)

    net.load_state_dict(best[1])
    val_loss, val_acc = evaluate(net, val_ids, val_labels)
    _, sst_acc = evaluate(net, sst_ids, sst_labels) if sst_ids else (0.0, 0.0)

    out.mkdir(parents=True, exist_ok=True)
    save_tokenizer(tokenizer, out / "tokenizer")
    cfg.to_json(out / "config.json")
    torch.save(net.state_dict(), out / "weights.pt")
    metrics = {
        "best_epoch": best[2],
        "val_loss": round(val_loss, 4),
        "val_accuracy": round(val_acc, 4),
        "sst2_dev_accuracy": round(sst_acc, 4),
        "train_reviews": len(train_rows) - n_sst2,
        "train_sst2_phrases": n_sst2,
        "sst2_weight": cfg.sst2_weight,
        "val_reviews": len(val_rows),
        "sst2_dev_sentences": len(sst_ids),
        "history": [{k: round(v, 4) if isinstance(v, float) else v for k, v in h.items()} for h in history],
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    plot_curve(history, out / "training_curve.png")
    write_baseline(net, tokenizer, val_ids, val_labels, out)
    return metrics


def write_baseline(net: SentimentNet, tokenizer, val_ids: list[list[int]], val_labels: list[int], out: Path) -> None:
    """The calibration and drift baseline of the validation split, shipped in the archive for evaluation/."""
    net.eval()
    with torch.no_grad():
        logits = [x for s in range(0, len(val_ids), 512) for x in net(*pack(val_ids[s : s + 512])).tolist()]
    unk = tokenizer.backend.token_to_id(UNK)
    baseline.save(out, logits, [len(ids) for ids in val_ids], [ids.count(unk) for ids in val_ids], val_labels)


def plot_curve(history: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.5))
    ax_loss.plot(epochs, [h["train_loss"] for h in history], label="train")
    ax_loss.plot(epochs, [h["val_loss"] for h in history], label="IMDB validation")
    ax_loss.plot(epochs, [h["sst2_dev_loss"] for h in history], label="SST-2 dev")
    ax_loss.set(xlabel="epoch", ylabel="binary cross-entropy", title="Loss")
    ax_loss.legend()
    ax_acc.plot(epochs, [h["val_accuracy"] for h in history], color="C1", label="IMDB validation")
    ax_acc.plot(epochs, [h["sst2_dev_accuracy"] for h in history], color="C2", label="SST-2 dev")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="Validation accuracy")
    ax_acc.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def training_cli(description: str, artifacts: Path) -> argparse.Namespace:
    """A trainer's command line (--data-dir, --out), with logging on and both cores for torch."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR, help="holds imdb/ and sst2/ (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=artifacts)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(2)  # training has the machine to itself, unlike a serving worker
    return args


def main() -> None:
    args = training_cli(__doc__, ARTIFACTS)
    started = time.perf_counter()
    metrics = train(ModelConfig(), args.data_dir, args.out)
    logger.info(
        "done in %.0f s: val_accuracy %.4f, SST-2 dev %.4f",
        time.perf_counter() - started,
        metrics["val_accuracy"],
        metrics["sst2_dev_accuracy"],
    )


if __name__ == "__main__":
    main()
