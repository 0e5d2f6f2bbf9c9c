"""The CTranslate2 backend (the `ctranslate2` extra), in two halves that share only the directory format.

`export` writes a checkpoint as a CTranslate2 model directory; `engine` translates with one. `directory`
is what both agree on: the `nmt_export.json` beside the weights, and how to read it. The engine never
imports the exporter (nor the exporter the engine), and this file imports neither, so translating with
an exported model loads no conversion code (`tests/test_layers.py` checks both).
"""
