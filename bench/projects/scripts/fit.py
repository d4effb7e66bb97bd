import sys

print("fit", sys.argv[1:])
