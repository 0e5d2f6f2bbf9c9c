"""Thin wrapper: same as the `nmt-translate` console script."""

from nmt.cli.translate import main

if __name__ == "__main__":
    main()
