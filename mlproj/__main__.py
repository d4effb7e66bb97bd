"""`python -m mlproj` is the `mlproj` command."""

from mlproj.cli.main import main

if __name__ == "__main__":
    main()
