"""The code's layout, as a newcomer meets it: a tree of the apps' folders with
their line counts, the modules over the size limit, any import ring, and any
import against the apps' one direction (api -> campaigns -> loyalty -> segments -> crm).

    python scripts/layout.py            the tree (docs/layout.md holds a copy)
    python scripts/layout.py --check    exit 1 listing long modules and rings

An import counts wherever it is written, at the top of a module or inside a
function: a ring hidden in a function is still a ring a reader must untangle.
Migrations are left out (they are generated and never edited)."""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APPS = ("crm", "segments", "loyalty", "campaigns", "api")  # dependencies point from right to left
MAX_LINES = 500
# The places that may compose from apps above their own (DESIGN.md).
COMPOSERS = {
    "crm.admin_member_standing": "the member page shows what every app knows of him",
    "crm.urls": "the project's URLconf mounts every app's views",
}


def modules(root: Path = ROOT) -> dict[str, Path]:
    """Dotted name -> file, for every module of the apps (migrations aside)."""
    found = {}
    for app in APPS:
        for path in sorted((root / app).rglob("*.py")):
            if "migrations" in path.relative_to(root).parts:
                continue
            parts = path.relative_to(root).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def imports(found: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the modules of the apps it imports (anywhere in its text)."""

    def resolve(name: str) -> str | None:
        while name and name not in found:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, path in found.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets.update(resolve(alias.name) for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join([*parts, base] if base else parts)
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    targets.add(full if full in found else resolve(base))
        graph[name] = {target for target in targets if target and target != name}
    return graph


def rings(graph: dict[str, set[str]]) -> list[list[str]]:
    """Groups of modules that import each other, directly or round a ring (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(graph) + 100))
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def upward(graph: dict[str, set[str]]) -> list[str]:
    """Imports against the one direction api -> campaigns -> loyalty -> segments -> crm."""
    rank = {app: number for number, app in enumerate(APPS)}
    return [
        f"{name} -> {target}"
        for name, targets in sorted(graph.items())
        for target in sorted(targets)
        if rank[target.split(".")[0]] > rank[name.split(".")[0]] and name not in COMPOSERS
    ]


def line_count(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


def long_modules(found: dict[str, Path], limit: int = MAX_LINES) -> dict[str, int]:
    return {name: count for name, path in found.items() if (count := line_count(path)) > limit}


def tree(found: dict[str, Path], root: Path = ROOT) -> str:
    """Each folder with its total, then its modules with theirs (templates and migrations aside)."""
    folders: dict[Path, list[Path]] = defaultdict(list)
    for path in found.values():
        folders[path.parent].append(path)
    lines = []
    for folder in sorted(folders):
        files = sorted(folders[folder])
        total = sum(line_count(path) for path in files)
        lines.append(f"{folder.relative_to(root)}/  ({total} lines)")
        lines.extend(f"    {path.name:<28} {line_count(path):>5}" for path in files)
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    found = modules()
    if "--check" not in argv:
        print(tree(found))
        return 0
    problems = [f"{name}: {count} lines (at most {MAX_LINES})" for name, count in sorted(long_modules(found).items())]
    graph = imports(found)
    problems += ["import ring: " + " <-> ".join(group) for group in rings(graph)]
    problems += [f"imports against the apps' direction: {line}" for line in upward(graph)]
    for problem in problems:
        print(problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
