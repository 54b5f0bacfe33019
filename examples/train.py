"""A small, real training job tracked with wbtool: logistic regression on a
synthetic data set, in plain Python (no extra packages).

    python examples/train.py --epochs 20 --lr 0.5
    wbtool runs list && wbtool runs show <id>
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import tempfile

import wbtool


def make_data(n: int, seed: int) -> list[tuple[list[float], int]]:
    rng = random.Random(seed)
    true_w = [1.5, -2.0, 0.7]
    data = []
    for _ in range(n):
        x = [rng.gauss(0, 1) for _ in true_w]
        p = 1 / (1 + math.exp(-sum(w * v for w, v in zip(true_w, x, strict=True))))
        data.append((x, 1 if rng.random() < p else 0))
    return data


def evaluate(w: list[float], b: float, data: list[tuple[list[float], int]]) -> tuple[float, float]:
    loss = correct = 0.0
    for x, y in data:
        z = sum(wi * xi for wi, xi in zip(w, x, strict=True)) + b
        p = min(max(1 / (1 + math.exp(-z)), 1e-12), 1 - 1e-12)
        loss -= y * math.log(p) + (1 - y) * math.log(1 - p)
        correct += (p >= 0.5) == (y == 1)
    return loss / len(data), correct / len(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--lr", type=float, default=0.3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    train, val = make_data(2000, args.seed), make_data(500, args.seed + 1)
    with wbtool.init(project="quickstart", config=args, job_type="train",
                     tags=["example"]) as run:
        run.define_metric("val/loss", summary="min,last")
        run.define_metric("val/acc", summary="max,last")
        w, b = [0.0, 0.0, 0.0], 0.0
        step = 0
        for epoch in range(run.config.epochs):
            random.Random(epoch).shuffle(train)
            for start in range(0, len(train), run.config.batch_size):
                batch = train[start:start + run.config.batch_size]
                gw, gb = [0.0] * len(w), 0.0
                for x, y in batch:
                    z = sum(wi * xi for wi, xi in zip(w, x, strict=True)) + b
                    err = 1 / (1 + math.exp(-z)) - y
                    gw = [g + err * xi for g, xi in zip(gw, x, strict=True)]
                    gb += err
                w = [wi - run.config.lr * g / len(batch) for wi, g in zip(w, gw, strict=True)]
                b -= run.config.lr * gb / len(batch)
                step += 1
                if step % 10 == 0:
                    run.log({"train/loss": evaluate(w, b, batch)[0], "epoch": epoch})
            val_loss, val_acc = evaluate(w, b, val)
            run.log({"val/loss": val_loss, "val/acc": val_acc, "epoch": epoch})
            print(f"epoch {epoch:2d}  val/loss {val_loss:.4f}  val/acc {val_acc:.3f}")

        model_dir = tempfile.mkdtemp()
        with open(os.path.join(model_dir, "model.json"), "w") as f:
            json.dump({"w": w, "b": b}, f)
        run.log_model(model_dir, name="logreg", aliases=["candidate"])
        run.summary["final_weights"] = w
        print(f"run {run.id} finished: best val/acc {run.summary['val/acc']['max']:.3f}")


if __name__ == "__main__":
    main()
