"""Fit a linear regression by gradient descent, in plain Python; write the model and its metrics.

python train.py --data data/houses.csv --epochs 200 --lr 0.05 [--out DIR]
"""

import argparse
import csv
import json
import math
import os
import random
from pathlib import Path


def load(path):
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    header, body = rows[0], [[float(x) for x in row] for row in rows[1:] if row]
    return header[:-1], [row[:-1] for row in body], [row[-1] for row in body]


def standardise(columns):
    means = [sum(c) / len(c) for c in columns]
    stds = [math.sqrt(sum((x - m) ** 2 for x in c) / len(c)) or 1.0 for c, m in zip(columns, means)]
    return means, stds


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--out", default="", help="output folder (default: the run's folder)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    names, features, target = load(args.data)
    rng = random.Random(args.seed)
    order = list(range(len(target)))
    rng.shuffle(order)
    split = int(0.8 * len(order))
    train_idx, test_idx = order[:split], order[split:]

    means, stds = standardise(list(zip(*[features[i] for i in train_idx])))
    scale = lambda row: [(x - m) / s for x, m, s in zip(row, means, stds)]
    x_train = [scale(features[i]) for i in train_idx]
    y_train = [target[i] for i in train_idx]

    weights, bias = [0.0] * len(names), 0.0
    for epoch in range(1, args.epochs + 1):
        grad_w, grad_b, loss = [0.0] * len(weights), 0.0, 0.0
        for row, y in zip(x_train, y_train):
            error = sum(w * x for w, x in zip(weights, row)) + bias - y
            loss += error * error
            grad_b += error
            for j, x in enumerate(row):
                grad_w[j] += error * x
        n = len(y_train)
        weights = [w - args.lr * 2 * g / n for w, g in zip(weights, grad_w)]
        bias -= args.lr * 2 * grad_b / n
        if epoch == 1 or epoch % max(1, args.epochs // 5) == 0:
            print(f"epoch {epoch:4d}  train rmse {math.sqrt(loss / n):8.3f}", flush=True)

    def rmse(indices):
        errors = [sum(w * x for w, x in zip(weights, scale(features[i]))) + bias - target[i] for i in indices]
        return math.sqrt(sum(e * e for e in errors) / len(errors))

    metrics = {"train_rmse": rmse(train_idx), "test_rmse": rmse(test_idx), "epochs": args.epochs}
    out = Path(args.out or Path(os.environ.get("MLPROJ_RUN_DIR", ".")) / "artifacts")
    out.mkdir(parents=True, exist_ok=True)
    model = {"features": names, "means": means, "stds": stds, "weights": weights, "bias": bias}
    (out / "model.json").write_text(json.dumps(model, indent=2))
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    print(f"test rmse {metrics['test_rmse']:.3f}; model and metrics written to {out.resolve()}")


if __name__ == "__main__":
    main()
