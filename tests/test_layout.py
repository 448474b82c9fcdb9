"""The package layout: no import cycles (module-level or lazy), no oversized source files, contract aliases."""

import ast
import importlib
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("jax_tx", "torch_ref")
MAX_LINES = 420


def _module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """module -> the project modules it imports anywhere in its body (function-level imports included)."""
    files = [p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")]
    names = {_module_name(p) for p in files}
    graph = {}
    for p in files:
        deps = set()
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                deps |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names}
        me = _module_name(p)
        graph[me] = {d for d in deps if d in names and d != me}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}

    def visit(u, stack):
        state[u] = 1
        stack.append(u)
        for v in sorted(graph[u]):
            if state.get(v) == 1:
                return stack[stack.index(v) :] + [v]
            if not state.get(v) and (found := visit(v, stack)):
                return found
        stack.pop()
        state[u] = 2
        return None

    for m in sorted(graph):
        if not state.get(m) and (found := visit(m, [])):
            return found
    return None


def test_no_import_cycles():
    assert find_cycle(import_graph()) is None


def test_cycle_finder_detects_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_source_files_stay_small():
    big = {
        str(p.relative_to(ROOT)): n
        for d in (*PACKAGES, "tests", "parity_tests", "experiments")
        for p in (ROOT / d).rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert big == {}


def test_contract_aliases_are_the_same_modules():
    import jax_tx

    assert importlib.import_module("jax_tx.convert") is importlib.import_module("jax_tx.io.convert")
    assert importlib.import_module("jax_tx.checkpoint") is importlib.import_module("jax_tx.io.checkpoint")
    assert jax_tx.convert.torch_to_flax is importlib.import_module("jax_tx.io.convert").torch_to_flax
    assert jax_tx.checkpoint.restore is importlib.import_module("jax_tx.io.checkpoint").restore
    assert jax_tx.make_policy is importlib.import_module("jax_tx.models.policy").make_policy


def test_torch_ref_mirrors_model_file_names():
    def files(root: pathlib.Path) -> set[str]:
        return {p.relative_to(root).as_posix() for p in root.rglob("*.py")}

    jax_files = files(ROOT / "jax_tx" / "models") - {"registry.py", "checks.py"}
    torch_files = files(ROOT / "torch_ref" / "models")
    assert jax_files == torch_files
    assert {"encoders/__init__.py", "encoders/mlp.py", "encoders/tokens.py"} <= torch_files
    assert {p.name for p in (ROOT / "jax_tx" / "nn").glob("*.py")} == {
        p.name for p in (ROOT / "torch_ref" / "nn").glob("*.py")
    }
