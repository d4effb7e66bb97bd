"""Score trained models on the held-out data and write a report naming the best one.

python compare.py --test test.csv --model NAME=DIR [--model NAME=DIR ...] --report report.json
"""

import argparse
import csv
import json
import math


def rmse(model, rows):
    errors = []
    for row in rows:
        features, target = [float(x) for x in row[:-1]], float(row[-1])
        scaled = [(x - m) / s for x, m, s in zip(features, model["means"], model["stds"])]
        prediction = sum(w * x for w, x in zip(model["weights"], scaled)) + model["bias"]
        errors.append(prediction - target)
    return math.sqrt(sum(e * e for e in errors) / len(errors))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--test", required=True)
    parser.add_argument("--model", action="append", required=True, metavar="NAME=DIR")
    parser.add_argument("--report", required=True)
    args = parser.parse_args()

    with open(args.test, newline="") as handle:
        rows = list(csv.reader(handle))[1:]
    scores = {}
    for item in args.model:
        name, _, folder = item.partition("=")
        with open(f"{folder}/model.json") as handle:
            scores[name] = rmse(json.load(handle), rows)
        print(f"{name}: test rmse {scores[name]:.3f}")
    best = min(scores, key=scores.get)
    with open(args.report, "w") as handle:
        json.dump({"best": best, "test_rmse": scores}, handle, indent=2)
    print(f"best: {best}")


if __name__ == "__main__":
    main()
