"""Thin wrapper: same as the `nmt-plot` console script."""

from nmt.cli.plot import main

if __name__ == "__main__":
    main()
