"""DESIGN's one-way layering, checked on the real import statements of every module in `nmt/`."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "nmt"

# Each module may import only from layers at or before its own position.
LAYERS = [
    "errors",
    "config",
    "atomic",
    "device",
    "compat",
    "checkpoint",
    "average",
    "data",
    "model",
    "decode",
    "documents",
    "ctranslate2",
    "evaluate",
    "workflows",
]
LAYERS += ["train", "serve", "cli"]
LIGHTNING_LAYERS = {"train", "cli"}
WEB_LAYERS = {"serve", "cli"}  # the `serve` extra: the ASGI app, its server and its metrics
WEB_STACK = {"starlette", "fastapi", "uvicorn", "prometheus_client", "multipart", "python_multipart", "httpx"}


def _layer(module: str) -> str:
    """`nmt.data.corpus` -> `data`; `nmt.config` -> `config`."""
    return module.split(".")[1]


def _imports(path: Path, module: str) -> set[str]:
    """Absolute names of what the file of `module` imports, as `_imported_names` resolves them."""
    return _imported_names(path.read_text(encoding="utf-8"), module)


def _imported_names(source: str, module: str) -> set[str]:
    """Absolute names imported by `source`, the code of `module` (`nmt.data.corpus`, `nmt.data.__init__`).

    Relative imports resolve against the module's package (`from ..config import X` in `nmt.data.corpus` is
    `nmt.config`), and `from PACKAGE import NAME` also counts `PACKAGE.NAME`, which may be a submodule
    (`from nmt import train` imports `nmt.train`).
    """
    package = module.split(".")[:-1]  # the module's package: nmt.data.corpus and nmt.data.__init__ -> nmt.data
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                if node.level > len(package):
                    raise ValueError(f"{module}: relative import beyond the top-level package (level {node.level})")
                base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return names


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if len(parts) > 1:
            out.append((".".join(parts), path))
    return out


def test_every_module_belongs_to_a_layer():
    unknown = {m for m, _ in _modules() if m != "nmt.__init__" and _layer(m) not in LAYERS}
    assert not unknown, f"modules outside DESIGN's layers: {unknown}"


def test_imports_point_only_to_earlier_layers():
    violations = [
        problem
        for module, path in _modules()
        if module != "nmt.__init__"
        for problem in _layer_violations(module, _imports(path, module))
    ]
    assert not violations, "\n".join(violations)


def _layer_violations(module: str, names: set[str]) -> list[str]:
    """The imports of `module` from a later layer than its own."""
    own = LAYERS.index(_layer(module))
    return sorted(
        f"{module} imports {name}" for name in names if name.startswith("nmt.") and LAYERS.index(_layer(name)) > own
    )


def test_relative_imports_are_resolved_and_checked_like_absolute_ones():
    """`from .x import y` and `from ..data import z` name modules too: an upward import written relatively, or as
    `from nmt import train`, is a violation like its absolute form."""
    source = (
        "from . import batching\n"
        "from .corpus import FilterStats\n"
        "from ..config import DataConfig\n"
        "from .. import errors\n"
        "from ..decode.search import greedy\n"
        "from nmt import train\n"
    )
    names = _imported_names(source, "nmt.data.prepared")
    expected = {"nmt.data.batching", "nmt.data.corpus", "nmt.config", "nmt.errors", "nmt.decode.search", "nmt.train"}
    assert expected <= names
    assert _imported_names("from . import x\n", "nmt.data.__init__") >= {"nmt.data", "nmt.data.x"}
    assert _layer_violations("nmt.data.prepared", names) == [
        "nmt.data.prepared imports nmt.decode.search",
        "nmt.data.prepared imports nmt.decode.search.greedy",
        "nmt.data.prepared imports nmt.train",
    ]


def test_lightning_only_in_training_and_cli():
    offenders = [
        f"{module} imports {name}"
        for module, path in _modules()
        if module != "nmt.__init__" and _layer(module) not in LIGHTNING_LAYERS
        for name in _imports(path, module)
        if name.split(".")[0] in {"lightning", "pytorch_lightning"}
    ]
    assert not offenders, "\n".join(offenders)


def test_web_stack_only_in_serving_and_cli():
    """Starlette, uvicorn and prometheus-client are the `serve` extra: everything else works without them."""
    offenders = [
        f"{module} imports {name}"
        for module, path in _modules()
        if module != "nmt.__init__" and _layer(module) not in WEB_LAYERS
        for name in _imports(path, module)
        if name.split(".")[0] in WEB_STACK
    ]
    assert not offenders, "\n".join(offenders)


def test_ctranslate2_only_in_its_backend():
    """CTranslate2 is an optional extra: only `nmt.ctranslate2` imports it, so everything else works without it."""
    offenders = [
        f"{module} imports {name}"
        for module, path in _modules()
        if module != "nmt.__init__" and _layer(module) != "ctranslate2"
        for name in _imports(path, module)
        if name.split(".")[0] == "ctranslate2"
    ]
    assert not offenders, "\n".join(offenders)


# Inside the CTranslate2 backend: what each module must not import. Export and engine share only
# `nmt.ctranslate2.directory`, and the package's `__init__` imports neither, so translating with an exported
# model never loads the converter.
CTRANSLATE2_APART = {
    "nmt.ctranslate2.__init__": {"nmt.ctranslate2.export", "nmt.ctranslate2.engine"},
    "nmt.ctranslate2.directory": {"nmt.ctranslate2.export", "nmt.ctranslate2.engine"},
    "nmt.ctranslate2.engine": {"nmt.ctranslate2.export"},
    "nmt.ctranslate2.export": {"nmt.ctranslate2.engine"},
}


def test_ctranslate2_export_and_engine_apart():
    modules = dict(_modules())
    assert {m for m in modules if _layer(m) == "ctranslate2"} == set(CTRANSLATE2_APART), "a new module: place it"
    offenders = [
        f"{module} imports {name}"
        for module, forbidden in CTRANSLATE2_APART.items()
        for name in _imports(modules[module], module)
        if any(name == f or name.startswith(f + ".") for f in forbidden)
    ]
    assert not offenders, "\n".join(offenders)


def test_model_imports_only_torch_and_config():
    # entmax: the optional sparse normalisers (torch code), imported only when a model asks for them
    allowed = {"torch", "nmt", "math", "dataclasses", "typing", "__future__", "collections", "warnings", "entmax"}
    offenders = [
        f"{module} imports {name}"
        for module, path in _modules()
        if _layer(module) == "model"
        for name in _imports(path, module)
        if name.split(".")[0] not in allowed or (name.startswith("nmt.") and _layer(name) not in {"config", "model"})
    ]
    assert not offenders, "\n".join(offenders)


def test_no_shell_eval_or_exec_in_library():
    """Configs and checkpoints are data: nothing in `nmt/` evaluates strings or spawns shells."""
    offenders = []
    for module, path in _modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in {"eval", "exec"}:
                offenders.append(f"{module}: {node.func.id}()")
            if isinstance(node, ast.keyword) and node.arg == "shell":
                offenders.append(f"{module}: shell=")
    assert not offenders, offenders


def _unsafe_load(node: ast.AST) -> str | None:
    """What is unsafe about `node`: Hydra object building, `_target_`, pickle, or `torch.load` without weights_only."""
    name = node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else None
    if name in {"instantiate", "get_class", "get_method"}:  # hydra.utils: build objects named in data
        return name
    if isinstance(node, ast.Constant) and node.value == "_target_":
        return "_target_"
    if isinstance(node, ast.Attribute) and getattr(node.value, "id", None) == "pickle" and "load" in node.attr:
        return f"pickle.{node.attr}"
    if isinstance(node, ast.Call) and ast.unparse(node.func) == "torch.load":
        flags = {k.arg: getattr(k.value, "value", None) for k in node.keywords}
        return None if flags.get("weights_only") is True else "torch.load without weights_only=True"
    return None


def test_nothing_builds_objects_from_config_or_unpickles_code():
    """Checkpoints and configs never name code to run: no Hydra instantiate, no pickle, only safe `torch.load`."""
    offenders = []
    for module, path in _modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            problem = _unsafe_load(node)
            if problem:
                offenders.append(f"{module}: {problem}")
    assert not offenders, offenders
