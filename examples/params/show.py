"""Print the parameters this entry point received, one per line, exactly as the program sees them."""

import argparse
import os

parser = argparse.ArgumentParser()
parser.add_argument("--greeting")
parser.add_argument("--count", type=int)
parser.add_argument("--ratio", type=float)
parser.add_argument("--shout")
parser.add_argument("--notes")
args, extra = parser.parse_known_args()

message = args.greeting.upper() if args.shout.lower() in ("true", "1", "yes") else args.greeting
for _ in range(args.count):
    print(message)
print(f"ratio = {args.ratio}")
with open(args.notes) as notes:
    print(f"notes ({args.notes}): {notes.readline().strip()}")
if extra:
    print(f"extra arguments: {extra}")
print(f"run ID: {os.environ.get('MLPROJ_RUN_ID')}")
