"""A stand-in for a training script: reads its arguments the way real ones do, and reports them."""

import argparse

parser = argparse.ArgumentParser()
parser.add_argument("--alpha", type=float)
parser.add_argument("--l1-ratio", type=float)
parser.add_argument("--epochs", type=int)
parser.add_argument("--label")
parser.add_argument("--extra", default="none")
args, unknown = parser.parse_known_args()
print(f"alpha={args.alpha} l1_ratio={args.l1_ratio} epochs={args.epochs} label={args.label} rest={unknown}")
