"""Workflows over several layers: each drives translation, scoring or corpus writing to one end.

`backtranslate` turns monolingual text into a synthetic parallel corpus with a reverse model;
`pruning_rounds` removes attention heads round by round, measuring BLEU and speed after each.
No Lightning here: the commands in `nmt.cli` run these, training runs elsewhere.
"""
