"""Attention heatmaps of one sentence pair (needs the `plots` extra): every head of every layer, and the alignment.

For a source and its target (given, or the model's own translation), the target is teacher-forced
and four PNG files are written beside `out`: `-cross` (one panel per decoder layer and head, rows
the predicted target pieces, columns the source pieces), `-encoder` and `-decoder` (self-attention,
same grid), and `-alignment` (the word-level attention of one layer, averaged over heads, with the
links `nmt-align` extracts from it drawn as boxes).

Labels in Chinese, Japanese or Korean need a CJK font: an installed one is found by name (Noto Sans
CJK, Source Han Sans, WenQuanYi, SimHei, PingFang, Microsoft YaHei, ...), or the one the `mplfonts`
package ships, or the file given as `font`.
"""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from nmt.config import DecodeConfig
from nmt.data.batching import collate
from nmt.decode.align import WORD_START, argmax_links, word_attention, word_index
from nmt.decode.translator import Translator
from nmt.evaluate.plots import _pyplot
from nmt.model.hard_attention import harden

CJK_FAMILIES = ("Noto Sans CJK", "Source Han Sans", "WenQuanYi", "SimHei", "PingFang", "Microsoft YaHei", "Heiti")


def needs_cjk(texts: list[str]) -> bool:
    """Whether any text has CJK ideographs, kana or hangul (which DejaVu Sans, matplotlib's font, lacks)."""
    ranges = ((0x2E80, 0x9FFF), (0xAC00, 0xD7AF), (0xF900, 0xFAFF), (0xFF00, 0xFFEF), (0x20000, 0x2FA1F))
    return any(lo <= ord(c) <= hi for text in texts for c in text for lo, hi in ranges)


def cjk_font(font: str | Path | None = None) -> str | None:
    """The family name of a font with CJK glyphs, registered with matplotlib: `font`, or one found; None if none."""
    from matplotlib import font_manager

    if font is None:
        installed = {f.name for f in font_manager.fontManager.ttflist}
        found = sorted(name for name in installed if any(name.startswith(family) for family in CJK_FAMILIES))
        if found:
            return found[0]
        spec = importlib.util.find_spec("mplfonts")
        package = None if spec is None or spec.origin is None else Path(spec.origin).parent
        bundled = [] if package is None else sorted(package.glob("fonts/NotoSans*CJK*"))
        if not bundled:
            return None
        font = bundled[0]
    if not Path(font).is_file():
        raise FileNotFoundError(f"font file {font} does not exist.")
    font_manager.fontManager.addfont(str(font))
    return font_manager.FontProperties(fname=str(font)).get_name()


def plot_attention(
    ckpt: str | Path,
    src: str,
    out: str | Path,
    tgt: str | None = None,
    *,
    layer: int = -1,
    method: str = "attention",
    decode: DecodeConfig | None = None,
    font: str | Path | None = None,
    device: str = "cpu",
    hardened: Sequence[str] = (),
) -> list[Path]:
    """Write the four heatmaps of (`src`, `tgt`) under `ckpt`'s model; `tgt` None: translate `src` first.

    `hardened` names heads to harden first (`nmt.model.hard_attention`), which then draw as one-hots.
    Returns the paths written: `{stem}-cross.png`, `-encoder.png`, `-decoder.png`, `-alignment.png`.
    """
    translator = Translator.from_checkpoint(ckpt, decode or DecodeConfig(), device)
    harden(translator.model, hardened)
    if tgt is None:
        (translation,) = translator.translate([src])
        tgt = translation.best
    if not src.strip() or not tgt.strip():
        raise ValueError("both the source and the target need some text to draw attention between.")
    model, tokenizer = translator.model, translator.tokenizer
    limit = model.cfg.max_positions - 1  # room for EOS or BOS
    src_ids, tgt_ids = tokenizer.encode_src([src])[0][:limit], tokenizer.encode_tgt([tgt])[0][:limit]
    src_pieces, tgt_pieces = tokenizer.pieces(src, "src")[:limit], tokenizer.pieces(tgt, "tgt")[:limit]
    ids = translator.engine.special_ids
    batch = collate([src_ids], [tgt_ids], ids.pad, ids.bos, ids.eos)
    with torch.inference_mode():
        _, maps = model.attention_maps(batch.src.to(translator.device), batch.tgt_in.to(translator.device))
    matrix = _word_attention(maps.cross, layer, method, src_pieces, tgt_pieces)  # refuses a bad layer first
    plt = _pyplot()
    family = cjk_font(font) if font is not None or needs_cjk([src, tgt]) else None
    if family is None and needs_cjk([src, tgt]):
        warnings.warn("no CJK font found, so CJK labels show as boxes; pass a font file.", stacklevel=2)
    stem = Path(out).with_suffix("")
    src_labels, tgt_in = src_pieces + ["</s>"], ["<s>"] + tgt_pieces
    tgt_out = tgt_pieces + ["</s>"]
    written = []
    with plt.rc_context({"font.family": ["DejaVu Sans"] + ([family] if family else [])}):
        for name, weights, rows, cols in (
            ("cross", maps.cross, tgt_out, src_labels),
            ("encoder", maps.encoder, src_labels, src_labels),
            ("decoder", maps.decoder, tgt_out, tgt_in),
        ):
            written.append(_grid(plt, [w[0].float().cpu() for w in weights], rows, cols, f"{stem}-{name}.png", name))
        reading = "shift-attention" if method == "shift" else "attention"
        title = f"{reading} of decoder layer {layer % len(maps.cross)}, mean over heads; boxes: links"
        words = (_words(src_pieces), _words(tgt_pieces))
        written.append(_alignment(plt, matrix, *words, title, f"{stem}-alignment.png"))
    return [Path(p) for p in written]


def _word_attention(cross: list[Tensor], layer: int, method: str, src: list[str], tgt: list[str]) -> Tensor:
    """The word-level attention [target words, source words] of `layer`, mean over heads, read as `method` reads it.

    `src` and `tgt` are the pieces of the two sentences, without EOS and BOS.
    """
    if not -len(cross) <= layer < len(cross):
        raise ValueError(f"`layer` must be in [{-len(cross)}, {len(cross) - 1}] for this model, but is {layer}.")
    weights = cross[layer][0].float().cpu()  # [H, T+1, S+1]
    if weights.size(0) == 0:
        raise ValueError(f"decoder layer {layer} has no cross-attention heads left (pruned): choose another.")
    start = 1 if method == "shift" else 0  # shift: the step where the piece is the decoder's input
    rows = weights.mean(0)[start : start + len(tgt), : len(src)]
    return word_attention(rows, word_index(tgt), word_index(src))


def _grid(plt, layers: list[Tensor], rows: list[str], cols: list[str], path: str, name: str) -> str:
    """One panel per layer (row) and head (column) of [H, rows, cols] weights."""
    n_heads = max(1, max(w.size(0) for w in layers))
    size = 0.16 * max(len(rows), len(cols)) + 1.2
    fig, axes = plt.subplots(len(layers), n_heads, figsize=(size * n_heads, size * len(layers)), squeeze=False)
    for i, weights in enumerate(layers):
        for h in range(n_heads):
            ax = axes[i][h]
            if h >= weights.size(0):
                ax.axis("off")
                ax.set_title(f"layer {i}: pruned" if h == 0 else "", fontsize=8)
                continue
            ax.imshow(weights[h].numpy(), cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
            ax.set_title(f"layer {i}, head {h}", fontsize=8)
            _label(ax, rows, cols, left=h == 0, bottom=i == len(layers) - 1)
    fig.suptitle(f"{name} attention (rows attend to columns)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _label(ax, rows: list[str], cols: list[str], left: bool, bottom: bool) -> None:
    ax.set_yticks(range(len(rows)), rows if left else [""] * len(rows), fontsize=7)
    ax.set_xticks(range(len(cols)), cols if bottom else [""] * len(cols), fontsize=7, rotation=90)


def _alignment(plt, matrix: Tensor, src_words: list[str], tgt_words: list[str], title: str, path: str) -> str:
    """The word attention matrix with its argmax links (`nmt-align`'s reading) drawn as boxes."""
    fig, ax = plt.subplots(figsize=(0.45 * matrix.size(1) + 2, 0.45 * matrix.size(0) + 1.5))
    ax.imshow(matrix.numpy(), cmap="Greys", vmin=0.0, vmax=float(matrix.max()), aspect="auto")
    for i, j in argmax_links(matrix):
        ax.add_patch(plt.Rectangle((i - 0.5, j - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2))
    ax.set_yticks(range(matrix.size(0)), tgt_words, fontsize=8)
    ax.set_xticks(range(matrix.size(1)), src_words, fontsize=8, rotation=90)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _words(pieces: list[str]) -> list[str]:
    """The words the pieces make up, grouped as `word_index` groups them."""
    index = word_index(pieces)
    words = [""] * (index[-1] + 1)
    for piece, word in zip(pieces, index, strict=True):
        words[word] += piece
    return [word.replace(WORD_START, "") for word in words]
