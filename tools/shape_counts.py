"""Counts of #35's "one shape per idea", for any revision: `.venv/bin/python tools/shape_counts.py [REV ...]`.

For each revision (default: HEAD) the package is checked out into a temporary folder and counted from its source:
the functions that turn image features into an answer (a softmax over cosines), the progress types, the `Refusal`
subclasses (and which of them the package catches by type), `ZeroShot`'s public methods, and the import cycles
between clipdemo's modules.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _sources(tree: Path) -> dict[str, ast.Module]:
    out = {}
    for path in sorted((tree / "clipdemo").rglob("*.py")):
        name = ".".join(path.relative_to(tree).with_suffix("").parts).removesuffix(".__init__")
        out[name] = ast.parse(path.read_text(encoding="utf-8"))
    return out


def _answer_functions(mods: dict[str, ast.Module]) -> list[str]:
    """The functions that take a softmax over labels: every one but attention's (core.inside) and the notebook's
    own code that the tests compare with (fakes)."""
    found = []
    for name, mod in mods.items():
        if name in ("clipdemo.core.inside", "clipdemo.fakes"):
            continue
        for fn in ast.walk(mod):
            if isinstance(fn, ast.FunctionDef) and any(
                    isinstance(c, ast.Call) and isinstance(c.func, ast.Attribute) and c.func.attr == "softmax"
                    for c in ast.walk(fn)):
                found.append(f"{name}.{fn.name}")
    return found


def _progress_types(mods: dict[str, ast.Module]) -> list[str]:
    """Type aliases and classes that carry progress, and bare `Callable[[int], None]` / `Callable[[Step], None]`."""
    found = []
    for name, mod in mods.items():
        for node in ast.walk(mod):
            if isinstance(node, ast.ClassDef) and node.name in ("Step", "Progress"):
                found.append(f"{name}.{node.name}")
            elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "ProgressFn"
                                                      for t in node.targets):
                value = ast.unparse(node.value)
                if "[[Progress]" not in value:  # a callback of the one Progress is that type's, not another
                    found.append(f"{name}.ProgressFn = {value}")
        src = ast.unparse(mod)
        for shape in ("Callable[[int], None]", "Callable[[Step], None]"):
            if shape in src and "progress" in src:
                found.append(f"{name}: {shape}")
    return found


def _refusals(mods: dict[str, ast.Module]) -> tuple[list[str], set[str]]:
    classes: dict[str, str] = {}
    for mod in mods.values():
        for node in ast.walk(mod):
            if isinstance(node, ast.ClassDef):
                bases = [ast.unparse(b) for b in node.bases]
                classes[node.name] = bases[0] if bases else ""
    def is_refusal(c: str) -> bool:
        seen = set()
        while c in classes and c not in seen:
            seen.add(c)
            c = classes[c]
            if c == "Refusal":
                return True
        return False
    subs = sorted(c for c in classes if is_refusal(c))
    caught = set()
    for mod in mods.values():
        for node in ast.walk(mod):
            names = []
            if isinstance(node, ast.ExceptHandler) and node.type is not None:
                names = [ast.unparse(node.type)]
            elif isinstance(node, ast.Call) and ast.unparse(node.func) == "isinstance" and len(node.args) == 2:
                names = [ast.unparse(node.args[1])]
            elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Tuple):  # a tuple of types caught later
                names = [ast.unparse(node.value)]
            for text in names:
                caught |= {c for c in subs if c in text.replace("(", " ").replace(")", " ").replace(",", " ").split()}
    return subs, caught


def _zeroshot_public(mods: dict[str, ast.Module]) -> list[str]:
    for node in ast.walk(mods["clipdemo.serving.service"]):
        if isinstance(node, ast.ClassDef) and node.name == "ZeroShot":
            return [f.name for f in node.body if isinstance(f, ast.FunctionDef) and not f.name.startswith("_")]
    return []


def _cycles(mods: dict[str, ast.Module]) -> list[list[str]]:
    """Strongly connected groups of more than one module in the module-level import graph (Tarjan)."""
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for name, mod in mods.items():
        typing_only = {id(n) for block in ast.walk(mod) if isinstance(block, ast.If)
                       and ast.unparse(block.test).endswith("TYPE_CHECKING") for n in ast.walk(block)}
        for node in ast.walk(mod):  # lazy imports inside functions too: a cycle is a cycle, if a late one
            if id(node) in typing_only:  # an annotation's import never runs
                continue
            targets = []
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from a package's __init__, one level less
                    parts = name.split(".")
                    parts = parts[:len(parts) - node.level + (1 if _is_package(name, mods) else 0)]
                    base = ".".join(parts + ([base] if base else []))
                subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in mods]
                targets = subs or [base]  # `from . import files` imports the module files, as grimp reads it
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            graph[name] |= {t for t in targets if t in mods and t != name}
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(10_000)

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def _is_package(name: str, mods: dict[str, ast.Module]) -> bool:
    return any(m.startswith(name + ".") for m in mods)


def counts(rev: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "clipdemo"], capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
        mods = _sources(Path(tmp))
    subs, caught = _refusals(mods)
    print(f"== {rev}")
    print(f"functions that turn features into an answer: {len(a := _answer_functions(mods))}: {', '.join(a)}")
    print(f"progress types: {len(p := _progress_types(mods))}: {'; '.join(p)}")
    print(f"Refusal subclasses: {len(subs)}; caught by type in the package: {len(caught)} ({', '.join(sorted(caught))});"
          f" never caught: {', '.join(c for c in subs if c not in caught) or 'none'}")
    print(f"ZeroShot public methods: {len(z := _zeroshot_public(mods))}")
    print(f"import cycles: {len(c := _cycles(mods))}" + "".join(f"\n  {' <-> '.join(g)}" for g in c))


if __name__ == "__main__":
    for rev in sys.argv[1:] or ["HEAD"]:
        counts(rev)
