"""Thin wrapper: same as the `nmt-evaluate` console script."""

from nmt.cli.evaluate import main

if __name__ == "__main__":
    main()
