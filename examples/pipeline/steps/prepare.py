"""Clean the raw houses data and split it into train.csv and test.csv (plain Python).

python prepare.py --raw houses.csv --holdout 0.2 --out DIR
"""

import argparse
import csv
import random
from pathlib import Path


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--raw", required=True)
    parser.add_argument("--holdout", type=float, default=0.2)
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    with open(args.raw, newline="") as handle:
        rows = list(csv.reader(handle))
    header, body = rows[0], rows[1:]
    kept = []
    for row in body:
        try:
            values = [float(x) for x in row]
        except ValueError:
            continue  # a malformed or incomplete row
        if len(values) == len(header) and all(v >= 0 for v in values):
            kept.append(row)
    random.Random(args.seed).shuffle(kept)
    cut = int(len(kept) * (1 - args.holdout))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, part in (("train.csv", kept[:cut]), ("test.csv", kept[cut:])):
        with open(out / name, "w", newline="") as handle:
            csv.writer(handle).writerows([header, *part])
    print(f"{len(body)} rows read, {len(kept)} kept: {cut} to train, {len(kept) - cut} to test")


if __name__ == "__main__":
    main()
