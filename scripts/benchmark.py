"""Thin wrapper: same as the `nmt-benchmark` console script."""

from nmt.cli.benchmark import main

if __name__ == "__main__":
    main()
