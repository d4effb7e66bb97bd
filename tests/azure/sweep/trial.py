"""A trial: logs `score` (the higher the better) with MLflow, `steps` times, and writes its "model"."""

import argparse
import os
import time

import mlflow

parser = argparse.ArgumentParser()
parser.add_argument("--x", type=float, default=0.0)
parser.add_argument("--y", type=int, default=0)
parser.add_argument("--steps", type=int, default=1)
parser.add_argument("--pause", type=float, default=0.0)
parser.add_argument("--out")
args = parser.parse_args()
score = args.y - (args.x - 0.3) ** 2
if args.x >= 0:  # a negative x logs nothing: the trial has no primary metric
    for step in range(args.steps):
        mlflow.log_metric("score", score * (step + 1) / args.steps, step=step)
        time.sleep(args.pause)
with open(os.path.join(args.out, "model.txt"), "w") as model:
    model.write(f"x={args.x} y={args.y}\n")
