"""`nmt.train.step_profile`: a real training step's operators land in the parts they belong to."""

from __future__ import annotations

import pytest
import torch

from nmt.config import ModelConfig
from nmt.model import Transformer
from nmt.train.loss import label_smoothed_nll
from nmt.train.step_profile import BETWEEN, PARTS, profile_step

pytestmark = pytest.mark.usefixtures("one_thread")
VOCAB, D_FF = 37, 48  # distinct from every other dimension of the model and batch


@pytest.mark.parametrize("bf16", [False, True])  # the fused attention kernel, and bf16's explicit path
def test_each_part_of_a_training_step_gets_its_operators(bf16: bool) -> None:
    torch.manual_seed(0)
    model = Transformer(ModelConfig(d_model=16, n_heads=2, enc_layers=1, dec_layers=1, d_ff=D_FF), VOCAB, VOCAB, 0)
    optimizer = torch.optim.AdamW(model.parameters())
    src, tgt = torch.randint(4, VOCAB, (6, 11)), torch.randint(4, VOCAB, (6, 9))  # 11 > FEW_QUERIES: fused in fp32

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(src, tgt)
        label_smoothed_nll(logits, tgt, 0.1, 0)[0].backward()
        optimizer.step()
        optimizer.zero_grad()

    step()
    found = profile_step(step, 2, VOCAB, D_FF)
    assert list(found.parts) == [*PARTS, BETWEEN]
    for part in PARTS[:7]:  # every part of this model but the catch-all has operators of its own
        assert found.parts[part] > 0, part
    assert sum(found.parts.values()) == pytest.approx(found.profiled)
    assert found.seconds > 0
