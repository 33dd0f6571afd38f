"""The code's shape, checked on every run: keyword-only wide records, short functions, no import
cycle (issue 23's measurable ends)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "desktop", "training", "packaging")
MAX_POSITIONAL_FIELDS = 5  # a record wider than this is built by keyword only
MAX_FUNCTION_LINES = 100


def project_files() -> Iterator[tuple[str, Path]]:
    """(module name, file) of every module outside tests."""
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            yield ".".join(parts), path


def _trees() -> Iterator[tuple[str, Path, ast.Module]]:
    for module, path in project_files():
        yield module, path, ast.parse(path.read_text(encoding="utf-8"), str(path))


def _dataclass_decorator(node: ast.ClassDef) -> ast.expr | None:
    for decorator in node.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        name = target.id if isinstance(target, ast.Name) else getattr(target, "attr", None)
        if name == "dataclass":
            return decorator
    return None


def _init_fields(node: ast.ClassDef) -> list[str]:
    """The fields a dataclass's __init__ takes (ClassVars and init=False fields are not)."""
    names = []
    for statement in node.body:
        if not isinstance(statement, ast.AnnAssign) or not isinstance(statement.target, ast.Name):
            continue
        if "ClassVar" in ast.unparse(statement.annotation):
            continue
        value = statement.value
        if isinstance(value, ast.Call) and any(
            k.arg == "init" and isinstance(k.value, ast.Constant) and k.value.value is False
            for k in value.keywords
        ):
            continue
        names.append(statement.target.id)
    return names


def wide_positional_dataclasses(module: str, tree: ast.Module) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.ClassDef):
            continue
        decorator = _dataclass_decorator(node)
        if decorator is None:
            continue
        fields = _init_fields(node)
        kw_only = isinstance(decorator, ast.Call) and any(
            k.arg == "kw_only" and isinstance(k.value, ast.Constant) and k.value.value is True
            for k in decorator.keywords
        )
        if len(fields) > MAX_POSITIONAL_FIELDS and not kw_only:
            found.append(f"{module}.{node.name} ({len(fields)} fields)")
    return found


def test_every_dataclass_wider_than_five_fields_is_keyword_only() -> None:
    found = [
        name for module, _, tree in _trees() for name in wide_positional_dataclasses(module, tree)
    ]
    assert found == [], "give these @dataclass(kw_only=True) (frozen too where it fits)"


def test_the_check_finds_a_wide_positional_dataclass() -> None:
    fields = "".join(f"    f{i}: int\n" for i in range(6))
    narrow = "    f0: int\n    f1: ClassVar[int] = 1\n    f2: int = field(init=False)\n"
    source = (
        f"@dataclass(frozen=True)\nclass Wide:\n{fields}\n"
        f"@dataclasses.dataclass(kw_only=True)\nclass Keyword:\n{fields}\n"
        f"@dataclass\nclass Narrow:\n{narrow}{fields[: fields.index('f4')]}"
    )
    assert wide_positional_dataclasses("m", ast.parse(source)) == ["m.Wide (6 fields)"]


def long_functions(module: str, tree: ast.Module) -> list[str]:
    return [
        f"{module}.{node.name} line {node.lineno}: {node.end_lineno - node.lineno + 1} lines"
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]


def test_no_function_is_over_100_lines() -> None:
    found = [name for module, _, tree in _trees() for name in long_functions(module, tree)]
    assert found == [], "split these into steps a reader can hold in mind"


def test_the_length_check_counts_from_def_to_the_last_line() -> None:
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES - 1))
    fits = f"def fits():\n{body}"
    over = f"async def over():\n{body}    return x0\n"
    assert long_functions("m", ast.parse(fits + "\n\n" + over)) == [
        f"m.over line {MAX_FUNCTION_LINES + 3}: {MAX_FUNCTION_LINES + 1} lines"
    ]


def imports_of(module: str, path: Path, tree: ast.Module, modules: set[str]) -> set[str]:
    """The project modules one module imports, at the top or inside functions.

    "from a.b import c" imports a.b.c when that is a module, else a.b. The parents a package
    import runs implicitly (a, a.b's __init__) are not counted: only what the code names.
    """
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in modules)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package[: len(package) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            for alias in node.names:
                if f"{base}.{alias.name}" in modules:
                    found.add(f"{base}.{alias.name}")
                elif base in modules:
                    found.add(base)
    return found


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (or a module importing itself)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []

    def visit(start: str) -> None:
        # Tarjan's algorithm, iterative: the module graph is deeper than a comfortable recursion.
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in graph[node]:
                    cycles.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return cycles


def test_no_import_cycle_among_the_project_modules() -> None:
    """import-linter's acyclic_siblings contract sees imports inside functions too, but not a
    module importing its own package's __init__ while that imports it; this sees both."""
    trees = list(_trees())
    modules = {module for module, _, _ in trees}
    graph = {module: imports_of(module, path, tree, modules) for module, path, tree in trees}
    assert import_cycles(graph) == []


def test_the_cycle_check_finds_a_cycle_through_a_function_level_import(tmp_path: Path) -> None:
    a = ast.parse("import pk.b\n")
    b = ast.parse("def later():\n    from pk import a\n")
    modules = {"pk", "pk.a", "pk.b"}
    graph = {
        "pk": set(),
        "pk.a": imports_of("pk.a", tmp_path / "a.py", a, modules),
        "pk.b": imports_of("pk.b", tmp_path / "b.py", b, modules),
    }
    assert import_cycles(graph) == [["pk.a", "pk.b"]]
