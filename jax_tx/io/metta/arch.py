"""Metta's architecture strings, read as data: `ClassPath(key=<python literal>, ...)`, never evaluated.

    tree = parse_architecture("metta.agent.policies.trxl.TRXLConfig(d_hidden=64, components=[X(name='a')])")
    tree == {"class_path": "metta.agent.policies.trxl.TRXLConfig", "d_hidden": 64,
             "components": [{"class_path": "X", "name": "a"}]}
    format_architecture(tree)   # back to call syntax (keyword order kept)

The string is parsed by `ast` (mode "eval"); a call node becomes a dict holding its dotted
`class_path` and its keywords; everything else must be a literal (`ast.literal_eval` rules), so
`__import__('os').system(...)` is refused as "not data" rather than run.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from typing import Any

from jax_tx.io.metta.errors import MettaError

CLASS_PATH = "class_path"


def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return None if base is None else f"{base}.{node.attr}"
    return None


def _to_data(node: ast.AST, where: str) -> Any:
    if isinstance(node, ast.Call):
        path = _dotted(node.func)
        if path is None or node.args:
            raise MettaError(f"{where}: {ast.unparse(node)[:80]!r} is not ClassPath(key=value, ...) data; not parsed")
        out: dict[str, Any] = {CLASS_PATH: path}
        for kw in node.keywords:
            if kw.arg is None or kw.arg == CLASS_PATH:
                raise MettaError(f"{where}: {ast.unparse(node)[:80]!r} has a keyword Metta does not write")
            out[kw.arg] = _to_data(kw.value, where)
        return out
    if isinstance(node, (ast.List, ast.Tuple)):
        items = [_to_data(e, where) for e in node.elts]
        return items if isinstance(node, ast.List) else tuple(items)
    if isinstance(node, ast.Dict):
        if any(k is None for k in node.keys):
            raise MettaError(f"{where}: dict unpacking is not data")
        return {_to_data(k, where): _to_data(v, where) for k, v in zip(node.keys, node.values, strict=True)}
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError) as e:
        raise MettaError(f"{where}: {ast.unparse(node)[:80]!r} is not a literal; the architecture is not data") from e


def parse_architecture(text: str, where: str = "architecture") -> dict[str, Any]:
    """The call-syntax architecture string as nested dicts (see the module docstring)."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as e:
        raise MettaError(f"{where}: cannot parse the architecture string ({e.msg}); the file is damaged") from e
    if not isinstance(tree.body, ast.Call):
        raise MettaError(f"{where}: the architecture string is not ClassPath(key=value, ...)")
    return _to_data(tree.body, where)


def format_architecture(tree: Any) -> str:
    """Inverse of parse_architecture: nested dicts with class_path -> call syntax, literals by repr."""
    if isinstance(tree, dict) and CLASS_PATH in tree:
        args = ", ".join(f"{k}={format_architecture(v)}" for k, v in tree.items() if k != CLASS_PATH)
        return f"{tree[CLASS_PATH]}({args})"
    if isinstance(tree, list):
        return "[" + ", ".join(format_architecture(v) for v in tree) + "]"
    if isinstance(tree, tuple):
        inner = ", ".join(format_architecture(v) for v in tree)
        return f"({inner},)" if len(tree) == 1 else f"({inner})"
    if isinstance(tree, dict):
        return "{" + ", ".join(f"{format_architecture(k)}: {format_architecture(v)}" for k, v in tree.items()) + "}"
    return repr(tree)


def walk(tree: Any, tags: str = "") -> Iterator[tuple[dict[str, Any], str]]:
    """(dict, lower-case class paths and names of it and its ancestors) for every dict in the tree."""
    if isinstance(tree, dict):
        tags = f"{tags} {tree.get(CLASS_PATH, '')} {tree.get('name', '')}".lower()
        yield tree, tags
        for v in tree.values():
            yield from walk(v, tags)
    elif isinstance(tree, (list, tuple)):
        for v in tree:
            yield from walk(v, tags)


def find_field(tree: Any, names: tuple[str, ...], component: str | None = None) -> Any | None:
    """The first scalar value of any of `names` in the tree; with `component`, only inside dicts whose
    class_path or name (or an ancestor's) contains that text."""
    for node, tags in walk(tree):
        if component is not None and component.lower() not in tags:
            continue
        for name in names:
            if name in node and not isinstance(node[name], (dict, list, tuple)):
                return node[name]
    return None
