"""Reads the raw CSV and writes the rows it keeps into the output folder."""

import argparse
import os

parser = argparse.ArgumentParser()
parser.add_argument("--raw")
parser.add_argument("--min", type=int, default=0)
parser.add_argument("--clean")
args = parser.parse_args()
with open(args.raw) as source:
    rows = [line.strip() for line in source if line.strip() and int(line.split(",")[0]) >= args.min]
with open(os.path.join(args.clean, "rows.csv"), "w") as target:
    target.write("\n".join(rows) + "\n")
print(f"prep kept {len(rows)} rows; SOURCE={os.environ.get('SOURCE')}")
