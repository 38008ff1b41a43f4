"""The package's layers (docs/design.md) as the import graph has them: no cycle, no import in a
function body to dodge one, codecs and kernels below the container."""

import ast
from pathlib import Path

import numpy as np
import pytest

import spherecodec
from spherecodec import warmup
from spherecodec.datasets import load_sample

PACKAGE = Path(spherecodec.__file__).resolve().parent

#: imports in function bodies that are there for a reason other than a cycle: optional
#: packages (torch via dive._train) and the bench package, which only its command loads
ALLOWED_LAZY = {
    ("spherecodec.cli", "spherecodec.bench"),
    ("spherecodec.cli", "spherecodec.integrations"),  # `from .integrations import arrow`: pyarrow is optional
    ("spherecodec.dive.adapter", "spherecodec.dive._train"),
    ("spherecodec.dive.baselines", "spherecodec.dive._train"),
}


def _module_name(path):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _targets(node, module, is_package):
    """The spherecodec modules an import statement names (``from . import x`` names x)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] == "spherecodec"]
    if node.level == 0:
        return [node.module] if (node.module or "").split(".")[0] == "spherecodec" else []
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[:len(base) - (node.level - 1)]
    if node.module:
        return [".".join(base + [node.module])]
    return [".".join(base + [a.name]) for a in node.names]


def _import_graph():
    """``{module: (module-level imports, imports inside functions)}`` over the package."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        top, lazy = set(), set()
        is_package = path.name == "__init__.py"
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                found = {t for t in _targets(node, module, is_package)}
                # a name imported from a package that is not a module is the package itself
                found = {t if t in modules else t.rsplit(".", 1)[0] for t in found}
                (top if node in tree.body else lazy).update(t for t in found if t in modules)
        graph[module] = (top - {module}, lazy - {module})
    return graph


def test_no_import_in_a_function_body_but_the_allowed_ones():
    lazy = {(m, t) for m, (_, targets) in _import_graph().items() for t in targets}
    assert lazy == ALLOWED_LAZY


def test_module_level_imports_have_no_cycle():
    graph = {m: top for m, (top, _) in _import_graph().items()}
    # a package's __init__ runs before its submodules: the edge submodule -> its package is
    # part of every import and cannot start a cycle of its own
    state, stack = {}, []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for t in sorted(graph[m]):
            if m.startswith(t + "."):
                continue
            if state.get(t) == "open":
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(t):] + [t]))
            if t not in state:
                visit(t)
        stack.pop()
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_codecs_and_kernels_sit_below_the_container():
    graph = _import_graph()
    above = {"spherecodec.container", "spherecodec.pipeline", "spherecodec.stream", "spherecodec.search",
             "spherecodec.blobsink", "spherecodec"}
    for module, (top, lazy) in graph.items():
        if module.startswith("spherecodec.codecs"):
            assert not (top | lazy) & above, (module, (top | lazy) & above)
        if module.startswith("spherecodec.kernels"):
            assert all(t.startswith("spherecodec.kernels") for t in top | lazy), (module, top | lazy)


def test_warm_cache_sees_the_kernel_cache_once_an_array_is_coded():
    x = load_sample()[:64]
    spherecodec.decode(spherecodec.encode(x))
    assert warmup.cache_is_warm()


def test_warmup_command_compiles_the_named_codecs(capsys):
    """``python -m spherecodec.warmup`` (for container images): every named codec and the
    exact codec's other dtypes and chunk modes run once; unknown names are refused."""
    assert warmup.main(["--codecs", "exact", "int8", "--processes", "1", "--dim", "40"]) == 0
    assert "compiled the kernels of 2 codecs for 40-d vectors" in capsys.readouterr().out
    variants = warmup._exact_variants(np.ones((4, 8), np.float32))
    assert {v.dtype.name for v in variants} == {"float16", "bfloat16", "float64", "float32"}
    with pytest.raises(SystemExit) as exit_info:
        warmup.main(["--codecs", "int16"])
    assert exit_info.value.code == 2 and "unknown codecs ['int16']" in capsys.readouterr().err
