"""Scores the model: writes one line into the --score file."""

import argparse

parser = argparse.ArgumentParser()
parser.add_argument("--model")
parser.add_argument("--score")
args = parser.parse_args()
with open(f"{args.model}/model.txt") as source:
    model = source.read().strip()
with open(args.score, "w") as target:
    target.write(f"score of {model}\n")
print("scored", model)
