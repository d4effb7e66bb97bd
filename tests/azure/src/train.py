"""Trains a "model" from the cleaned rows: writes it into --model, and notes into ./outputs."""

import argparse
import os

parser = argparse.ArgumentParser()
parser.add_argument("--data")
parser.add_argument("--lr", type=float)
parser.add_argument("--epochs", type=int, default=1)
parser.add_argument("--model")
args = parser.parse_args()
with open(os.path.join(args.data, "rows.csv")) as source:
    rows = source.read().split()
with open(os.path.join(args.model, "model.txt"), "w") as target:
    target.write(f"rows={len(rows)} lr={args.lr} epochs={args.epochs}\n")
os.makedirs("outputs", exist_ok=True)
with open("outputs/notes.txt", "w") as notes:
    notes.write(f"trained in {os.getcwd()}\n")
print(f"trained lr={args.lr} epochs={args.epochs}")
