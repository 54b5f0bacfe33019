"""A small, real training job tracked with wbtool: a two-layer network,
written with numpy alone, learns to tell three interleaved spirals apart.

    wbtool run -- python examples/train.py            # about ten seconds
    python examples/train.py --epochs 5               # works without the wrapper too
    wbtool runs list && wbtool runs show <id>

It logs loss and accuracy per epoch, shows a progress bar, and logs the
trained weights as a model artifact.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

import wbtool


def spirals(n: int, classes: int, noise: float, rng: np.random.Generator
            ) -> tuple[np.ndarray, np.ndarray]:
    per = n // classes
    x = np.zeros((per * classes, 2))
    y = np.zeros(per * classes, dtype=np.int64)
    for c in range(classes):
        r = np.linspace(0.05, 1.0, per)
        t = np.linspace(c * 4.0, (c + 1) * 4.0, per) + rng.normal(0, noise, per)
        x[c * per:(c + 1) * per] = np.c_[r * np.sin(t), r * np.cos(t)]
        y[c * per:(c + 1) * per] = c
    return x, y


class Net:
    def __init__(self, hidden: int, classes: int, rng: np.random.Generator) -> None:
        self.w1 = rng.normal(0, 1.0, (2, hidden))
        self.b1 = np.zeros(hidden)
        self.w2 = rng.normal(0, 1.0 / np.sqrt(hidden), (hidden, classes))
        self.b2 = np.zeros(classes)

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h = np.maximum(0, x @ self.w1 + self.b1)
        logits = h @ self.w2 + self.b2
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return h, p / p.sum(axis=1, keepdims=True)

    def step(self, x: np.ndarray, y: np.ndarray, lr: float, l2: float) -> float:
        h, p = self.forward(x)
        n = len(y)
        loss = -np.log(p[np.arange(n), y] + 1e-12).mean()
        d = p.copy()
        d[np.arange(n), y] -= 1
        d /= n
        dw2 = h.T @ d + l2 * self.w2
        dh = d @ self.w2.T
        dh[h <= 0] = 0
        dw1 = x.T @ dh + l2 * self.w1
        self.w2 -= lr * dw2
        self.b2 -= lr * d.sum(axis=0)
        self.w1 -= lr * dw1
        self.b1 -= lr * dh.sum(axis=0)
        return float(loss)

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
        _, p = self.forward(x)
        loss = -np.log(p[np.arange(len(y)), y] + 1e-12).mean()
        return float(loss), float((p.argmax(axis=1) == y).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--lr", type=float, default=0.5)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--samples", type=int, default=30000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    x, y = spirals(args.samples, 3, 0.4, rng)
    order = rng.permutation(len(y))
    split = int(0.8 * len(y))
    train, val = order[:split], order[split:]

    with wbtool.init(project="quickstart", config=args, job_type="train",
                     tags=["example", "numpy"]) as run:
        run.define_metric("val/loss", summary="min,last")
        run.define_metric("val/acc", summary="max,last")
        net = Net(run.config.hidden, 3, rng)
        steps = (len(train) + run.config.batch_size - 1) // run.config.batch_size
        columns = (TextColumn("epoch {task.fields[epoch]:>3}"), BarColumn(),
                   TextColumn("loss {task.fields[loss]:.3f}  acc {task.fields[acc]:.3f}"),
                   TimeRemainingColumn())
        with Progress(*columns) as progress:
            task = progress.add_task("train", total=run.config.epochs * steps, epoch=0,
                                     loss=float("nan"), acc=0.0)
            for epoch in range(run.config.epochs):
                start = time.perf_counter()
                rng.shuffle(train)
                losses = []
                for i in range(0, len(train), run.config.batch_size):
                    batch = train[i:i + run.config.batch_size]
                    losses.append(net.step(x[batch], y[batch], run.config.lr, 1e-4))
                    progress.advance(task)
                val_loss, val_acc = net.evaluate(x[val], y[val])
                run.log({"train/loss": float(np.mean(losses)), "val/loss": val_loss,
                         "val/acc": val_acc, "epoch": epoch,
                         "epoch_seconds": time.perf_counter() - start})
                progress.update(task, epoch=epoch, loss=val_loss, acc=val_acc)

        model_dir = tempfile.mkdtemp(prefix="spirals-")
        np.savez(os.path.join(model_dir, "model.npz"), w1=net.w1, b1=net.b1, w2=net.w2,
                 b2=net.b2)
        run.log_model(model_dir, name="spirals-mlp", aliases=["candidate"])
        print(f"best val/acc {run.summary['val/acc']['max']:.3f} "
              f"(model logged as spirals-mlp)")


if __name__ == "__main__":
    main()
