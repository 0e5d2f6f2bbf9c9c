"""The README's Python blocks run as written, with the session's tiny model in place of the quickstart's."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
QUICKSTART_MODEL = "runs/quickstart/model.pt"

pytestmark = pytest.mark.usefixtures("one_thread")


def python_blocks() -> list[str]:
    """Every ```python block of the README, in order."""
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.DOTALL)


def test_readme_has_python_blocks():
    assert python_blocks(), "no ```python block found: the extraction below would test nothing"


@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_readme_python_block_runs(index, model_path, capsys):
    code = python_blocks()[index].replace(QUICKSTART_MODEL, str(model_path))
    exec(compile(code, f"README.md python block {index}", "exec"), {"__name__": "readme"})
    assert capsys.readouterr().out.strip(), "the block printed nothing"
