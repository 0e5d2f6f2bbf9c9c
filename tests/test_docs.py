"""The README's and the docs' snippets: Python blocks print what the page shows, commands compose, links resolve.

Each ```python block runs as written, with the session's tiny model in place of the quickstart's
`runs/quickstart/model.pt`, and must be followed by a ```text block (blank lines between them at most)
that shows what it prints. The printed lines must match that block line for line, where `...` stands
for any text within a line, and a line of only `...` for any number of lines (doctest's ELLIPSIS).

Every `nmt-*` command of a shell block (and every one written inline with a `key=value`) composes
against the real Hydra configs as the console script would compose it: its keys exist and its values
have their types; a shell block's command also passes every rule (`nmt.config.check`). Shell variables
and placeholders (`$C`, `EXP`, `MODEL`, `...`) stand for some value. `nmt-plot` (argparse) is not checked.

Relative links and images lead to an existing file or page (and heading), and repository paths named in
code spans exist. `mkdocs build --strict` in .ci/run checks the docs' links again on the built site.
"""

from __future__ import annotations

import re
import shlex
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]
HOOKS = DOCS / "hooks.py"  # generates pages at build time (the configuration reference)
QUICKSTART_MODEL = "runs/quickstart/model.pt"

FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```[ \t]*$", flags=re.MULTILINE | re.DOTALL)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", flags=re.MULTILINE)
CONF = ROOT / "conf"
SCRIPTS = re.findall(r"^(nmt-[a-z]+) = ", (ROOT / "pyproject.toml").read_text(encoding="utf-8"), flags=re.MULTILINE)
SHELL_SEPARATORS = {";", "&&", "||", "|", "&", "(", ")", ";;"}
REDIRECTS = {">", ">>", "<", "2>"}
SHELL_VARIABLE = re.compile(r"(?:^|;)\s*([A-Z_][A-Z0-9_]*)=(\"[^\"]*\"|'[^']*'|[^\s;&|]*)")
PLACEHOLDER = re.compile(r"\$|\.\.\.|^[A-Z]+$")  # a shell variable, an elision, MODEL or CKPT
RECIPE_PLACEHOLDER = ("EXP", "multi30k_en_de")  # results.md's `EXP`: any recipe's name

pytestmark = pytest.mark.usefixtures("one_thread")


@dataclass
class Snippet:
    """A ```python block of a page, and the ```text block that shows its output (None if it has none)."""

    page: Path
    index: int  # the snippet's place among the page's python blocks
    code: str
    expected: str | None

    @property
    def name(self) -> str:
        return f"{self.page.relative_to(ROOT)} python block {self.index}"


def snippets(page: Path) -> list[Snippet]:
    """The page's python blocks in order, each with the text block right after it."""
    text = page.read_text(encoding="utf-8")
    fences = list(FENCE.finditer(text))
    out = []
    for i, fence in enumerate(fences):
        if fence.group(1).split(" ")[0] != "python":
            continue
        after = fences[i + 1] if i + 1 < len(fences) else None
        adjacent = after is not None and not text[fence.end() : after.start()].strip()
        shows_output = adjacent and after.group(1).split(" ")[0] == "text"
        out.append(Snippet(page, len(out), fence.group(2), after.group(2) if shows_output else None))
    return out


def output_pattern(expected: str) -> re.Pattern[str]:
    """The regular expression of an output block: `...` for any text in a line, a `...` line for any lines."""
    parts = []
    for line in expected.rstrip("\n").split("\n"):
        if line.strip() == "...":
            parts.append(r"(?:[^\n]*\n)*?")
        else:
            parts.append(".*?".join(re.escape(piece) for piece in line.rstrip().split("...")) + r"\n")
    return re.compile("".join(parts))


def slug(heading: str) -> str:
    """A heading's anchor as MkDocs (Python-Markdown's toc) and GitHub make it, for plain-text headings."""
    text = re.sub(r"`([^`]*)`", r"\1", heading)  # code spans keep their text
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # links keep their text
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def anchors(page: Path) -> set[str]:
    """The anchors of a page's headings (code blocks left out: their `#` lines are comments)."""
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    return {slug(heading) for heading in HEADING.findall(text)}


def generated(target: Path) -> bool:
    """Whether `target` is a docs page that docs/hooks.py writes at build time (not in the tree)."""
    if not HOOKS.exists() or DOCS not in target.parents:
        return False
    return target.relative_to(DOCS).as_posix() in HOOKS.read_text(encoding="utf-8")


def broken_links(page: Path) -> list[str]:
    """The relative links and images of a page whose file, page or heading does not exist."""
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    problems = []
    for target in LINK.findall(text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            if not generated(file):
                problems.append(f"{target}: no file {file.relative_to(ROOT)}")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            problems.append(f"{target}: no heading #{anchor} in {file.relative_to(ROOT)}")
    return problems


@dataclass
class Command:
    """An `nmt-*` command line of a page: from a shell block (`whole`) or written inline in the prose."""

    page: Path
    words: list[str]
    whole: bool

    @property
    def name(self) -> str:
        return f"{self.page.relative_to(ROOT)}: {shlex.join(self.words)}"[:150]


def command_lines(line: str) -> list[list[str]]:
    """The `nmt-*` commands of one shell line, each as its words: after `;`, `&&`, `|`, `do`, `srun` ..."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split, lexer.commenters = True, "#"
    out: list[list[str]] = []
    current: list[str] | None = None
    words = iter([*lexer, ";"])
    for word in words:
        if word in SHELL_SEPARATORS:
            if current:
                out.append(current)
            current = None
        elif word in REDIRECTS:
            next(words)  # the file
        elif current is not None:
            current.append(word)
        elif re.fullmatch(r"nmt-[a-z]+", word):
            current = [word]
    return out


def expand(line: str, variables: dict[str, str]) -> str:
    """The line with each `$NAME` of `variables` replaced by its value; other variables are left."""
    return re.sub(r"\$(\w+)", lambda match: variables.get(match.group(1), match.group(0)), line)


def commands(page: Path) -> list[Command]:
    """Every `nmt-*` command of the page's shell blocks, and those written inline with a `key=value`."""
    text = page.read_text(encoding="utf-8")
    out = []
    for info, body in FENCE.findall(text):
        if info.split(" ")[0] in ("bash", "sh"):
            variables: dict[str, str] = {}  # the block's own `NAME=value` assignments, expanded where used
            for line in body.replace("\\\n", " ").split("\n"):
                for name, value in SHELL_VARIABLE.findall(line):
                    variables[name] = value.strip("\"'")
                out += [Command(page, words, whole=True) for words in command_lines(expand(line, variables))]
    for span in re.findall(r"`(nmt-[a-z]+ [^`]*=[^`]*)`", FENCE.sub("", text)):
        out += [Command(page, words, whole=False) for words in command_lines(span.replace("\n", " "))]
    return out


def overrides(command: Command) -> list[str]:
    """The command's `key=value` words as Hydra gets them: placeholders made values, a sweep's first value."""
    sweep = "-m" in command.words or "--multirun" in command.words
    out = []
    for word in command.words[1:]:
        key, is_pair, value = word.replace(*RECIPE_PLACEHOLDER).partition("=")
        if not is_pair:
            continue
        if PLACEHOLDER.search(value):
            value = "placeholder"
        elif sweep and "," in value and not value.startswith("["):
            value = value.split(",")[0]
        out.append(f"{key}={value}")
    return out


ALL_SNIPPETS = [snippet for page in PAGES for snippet in snippets(page)]
ALL_COMMANDS = [command for page in PAGES for command in commands(page)]


def test_pages_have_python_blocks():
    assert ALL_SNIPPETS, "no ```python block found: the extraction below would test nothing"


def test_every_python_block_shows_its_output():
    missing = [snippet.name for snippet in ALL_SNIPPETS if snippet.expected is None]
    assert not missing, f"python blocks without a ```text block of their output right after them: {missing}"


@pytest.mark.parametrize("snippet", ALL_SNIPPETS, ids=lambda snippet: snippet.name)
def test_python_block_prints_what_the_page_shows(snippet, model_path, capsys):
    code = snippet.code.replace(QUICKSTART_MODEL, str(model_path))
    exec(compile(code, snippet.name, "exec"), {"__name__": "docs"})
    printed = "\n".join(line.rstrip() for line in capsys.readouterr().out.rstrip("\n").split("\n")) + "\n"
    assert snippet.expected is not None, f"{snippet.name} shows no output"
    assert output_pattern(snippet.expected).fullmatch(printed), (
        f"{snippet.name} printed\n{printed}\nbut the page shows\n{snippet.expected}"
    )


def test_commands_are_console_scripts():
    unknown = {command.words[0] for command in ALL_COMMANDS} - set(SCRIPTS)
    assert len(ALL_COMMANDS) > 50, f"only {len(ALL_COMMANDS)} nmt-* commands found in the pages"
    assert not unknown, f"commands in the pages that pyproject.toml does not install: {unknown}"


@pytest.mark.parametrize(
    "command",
    [c for c in ALL_COMMANDS if (CONF / f"{c.words[0][4:]}.yaml").exists()],
    ids=lambda command: command.name,
)
def test_command_composes(command):
    from hydra import compose, initialize_config_dir
    from hydra.core.config_store import ConfigStore
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    from nmt.cli.hydra_config import CONF_DIR, register_schemas, to_dataclass

    flags = [w for w in command.words[1:] if "=" not in w and w not in ("-m", "--multirun") and w[0] != "$"]
    assert not (command.whole and flags), f"{command.name}: arguments that are not key=value: {flags}"
    register_schemas()
    name = command.words[0][4:]
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name=name, overrides=overrides(command), return_hydra_config=True)
    if command.whole:
        OmegaConf.update(cfg, "hydra.runtime.output_dir", str(cfg.hydra.run.dir), force_add=True)  # as a run sets it
        HydraConfig.instance().set_config(cfg)  # for `${hydra:...}` values such as the run directory
        del cfg.hydra
        to_dataclass(cfg, OmegaConf.get_type(ConfigStore.instance().load(f"{name}_schema.yaml").node))


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_links_lead_to_files_and_headings(page):
    assert not broken_links(page), f"{page.relative_to(ROOT)} has broken links: {broken_links(page)}"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_code_paths_exist(page):
    """Paths of the repository named in code spans (`nmt/decode/search.py`) exist: modules move."""
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    paths = set(re.findall(r"`((?:nmt|tests|scripts|conf)/[\w/.-]*)`", text))
    missing = sorted(path for path in paths if not (ROOT / path).exists())
    assert not missing, f"{page.relative_to(ROOT)} names paths that do not exist: {missing}"


def test_output_pattern_reads_ellipses():
    pattern = output_pattern("Die Kinder ... Äpfel.\n...\ntorch.Size([..., 15])\n")
    assert pattern.fullmatch("Die Kinder kaufen rote Äpfel.\nanything\nelse\ntorch.Size([19, 15])\n")
    assert pattern.fullmatch("Die Kinder  Äpfel.\ntorch.Size([1, 15])\n")
    assert not pattern.fullmatch("Die Kinder kaufen rote Äpfel.\ntorch.Size([19, 16])\n")
    assert not pattern.fullmatch("Kinder kaufen Äpfel.\ntorch.Size([19, 15])\n")


def test_slug_matches_mkdocs_anchors():
    assert slug("Multi30k English to German in 2 hours") == "multi30k-english-to-german-in-2-hours"
    assert slug("Measurements behind the code's choices") == "measurements-behind-the-codes-choices"
    assert slug("Batches: `data.max_tokens`") == "batches-datamax_tokens"


def test_every_page_is_in_the_site_navigation():
    """A page under docs/ that mkdocs.yml's nav leaves out fails `mkdocs build --strict` (omitted_files)."""
    nav = set(re.findall(r"^\s+- [^:]+: (\S+\.md)$", (ROOT / "mkdocs.yml").read_text(encoding="utf-8"), re.MULTILINE))
    pages = {str(page.relative_to(DOCS)) for page in DOCS.rglob("*.md")}
    assert pages <= nav, f"pages under docs/ missing from mkdocs.yml's nav: {sorted(pages - nav)}"
