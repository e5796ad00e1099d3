"""Structural metrics of the package: largest modules and functions, cyclomatic complexity, and
import cycles (module-level and function-level imports alike).

    python benchmarks/code_metrics.py [SRC_ROOT]      # default: src

Complexity is McCabe's count as radon computes it: 1 + branches (if/elif, for, while, except,
with, assert, comprehension clauses, conditional expressions, match cases) + boolean operators.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

BRANCHES = (
    ast.If,
    ast.For,
    ast.AsyncFor,
    ast.While,
    ast.ExceptHandler,
    ast.With,
    ast.IfExp,
    ast.Assert,
)


def complexity(fn: ast.AST) -> int:
    score = 1
    for node in ast.walk(fn):
        if isinstance(node, BRANCHES):
            score += 1
        elif isinstance(node, ast.comprehension):
            score += 1 + len(node.ifs)
        elif isinstance(node, ast.BoolOp):
            score += len(node.values) - 1
        elif isinstance(node, ast.match_case):
            score += 1
    return score


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(tree: ast.AST, name: str, is_pkg: bool, modules: set[str]) -> set[str]:
    """Modules imported anywhere in ``tree``; ``from pkg import sub`` counts as ``pkg.sub``."""
    out: set[str] = set()
    package = name if is_pkg else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                member = f"{base}.{alias.name}"
                out.add(member if member in modules else base)
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for v in graph:
        if v not in index:
            visit(v)
    return found


def main(root: Path) -> None:
    files = sorted(root.rglob("*.py"))
    modules = {module_name(p, root): p for p in files}
    graph: dict[str, set[str]] = {}
    funcs: list[tuple[int, int, str]] = []
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        targets = imports(tree, name, path.name == "__init__.py", set(modules))
        graph[name] = {t for t in targets if t in modules and t != name}
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                funcs.append((complexity(node), length, f"{name}.{node.name}"))
    sizes = sorted(((len(p.read_text().splitlines()), n) for n, p in modules.items()), reverse=True)
    print(f"modules: {len(modules)}, lines: {sum(s for s, _ in sizes)}")
    print("largest modules:", ", ".join(f"{n} ({s})" for s, n in sizes[:5]))
    by_len = sorted(funcs, key=lambda f: -f[1])[:5]
    print("largest functions:", ", ".join(f"{n} ({ln} lines)" for _, ln, n in by_len))
    by_cc = sorted(funcs, reverse=True)[:5]
    print("highest complexity:", ", ".join(f"{n} ({cc})" for cc, _, n in by_cc))
    print(f"functions with complexity >= 10: {sum(1 for cc, _, _ in funcs if cc >= 10)}")
    found = cycles(graph)
    print(f"import cycles: {len(found)}")
    for comp in found:
        print("  ", " <-> ".join(comp))
    ignores = sum(p.read_text().count("type: ignore") for p in files)
    print(f"'type: ignore' comments: {ignores}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "src"))
