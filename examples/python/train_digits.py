"""Train a softmax-regression / one-hidden-layer MLP on the 8x8 digits data with numpy,
reporting validation error after every epoch. Works as an hpo trial (see experiment.toml
here) and checkpoints to the trial's checkpoint folder, so paused trials resume.

    python3 train_digits.py --learning_rate 0.1 --hidden 32 --epochs 10
"""

import argparse
import gzip
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "python"))
from hpo_report import report  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "crates/hpo-backends/data/digits/digits.csv.gz"


def load():
    with gzip.open(DATA, "rt") as f:
        rows = np.loadtxt(f, delimiter=",")
    x, y = rows[:, :64] / 16.0, rows[:, 64].astype(int)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(y))
    n_val = len(y) // 4
    val, train = order[:n_val], order[n_val:]
    return x[train], y[train], x[val], y[val]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--learning_rate", type=float, default=0.1)
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--st_checkpoint_dir", default=None)
    args, _ = p.parse_known_args()

    x, y, xv, yv = load()
    rng = np.random.default_rng(args.seed)
    w1 = rng.normal(0, 1 / 8, (64, args.hidden))
    w2 = rng.normal(0, 1 / np.sqrt(args.hidden), (args.hidden, 10))
    start = 0
    ckpt = os.path.join(args.st_checkpoint_dir, "model.npz") if args.st_checkpoint_dir else None
    if ckpt and os.path.exists(ckpt):
        saved = np.load(ckpt)
        w1, w2, start = saved["w1"], saved["w2"], int(saved["epoch"])

    for epoch in range(start + 1, args.epochs + 1):
        order = rng.permutation(len(y))
        for i in range(0, len(y), args.batch_size):
            b = order[i : i + args.batch_size]
            h = np.maximum(x[b] @ w1, 0)
            logits = h @ w2
            p_ = np.exp(logits - logits.max(1, keepdims=True))
            p_ /= p_.sum(1, keepdims=True)
            p_[np.arange(len(b)), y[b]] -= 1
            g2 = h.T @ p_ / len(b)
            g1 = x[b].T @ ((p_ @ w2.T) * (h > 0)) / len(b)
            w1 -= args.learning_rate * g1
            w2 -= args.learning_rate * g2
        val_error = float(np.mean(np.argmax(np.maximum(xv @ w1, 0) @ w2, 1) != yv))
        if ckpt:
            np.savez(ckpt + ".tmp.npz", w1=w1, w2=w2, epoch=epoch)
            os.replace(ckpt + ".tmp.npz", ckpt)
        report(epoch=epoch, val_error=val_error)


if __name__ == "__main__":
    main()
