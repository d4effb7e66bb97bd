"""`python -m mlproj` is the `mlproj` command."""

from mlproj.cli import main

if __name__ == "__main__":
    main()
