"""Thin wrapper: same as the `nmt-train` console script."""

from nmt.cli.train import main

if __name__ == "__main__":
    main()
