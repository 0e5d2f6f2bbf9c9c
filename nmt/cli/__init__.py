"""Command-line entry points (`nmt-train`, `nmt-translate`, `nmt-evaluate`): Hydra config in, library calls out."""
