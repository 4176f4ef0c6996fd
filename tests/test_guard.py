"""Guards for the project's invariants: one event loop, no threads for I/O, one client.

Static: the package never creates event loops, sets loop policies, starts threads or thread
pools, or calls `asyncio.run` outside the CLI entry point. Dynamic: a full webhook scenario
leaves no extra thread behind and never touches the loop's default (thread pool) executor.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "bot"

FORBIDDEN_CALLS = {
    "new_event_loop",
    "set_event_loop",
    "set_event_loop_policy",
    "get_event_loop",
    "run_coroutine_threadsafe",
    "run_in_executor",
    "to_thread",
    "Thread",
    "ThreadPoolExecutor",
    "ProcessPoolExecutor",
    "run_sync",  # anyio.to_thread.run_sync
}
FORBIDDEN_IMPORTS = {"threading", "concurrent.futures", "multiprocessing", "requests"}


def _calls(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            found.append((node.lineno, name))
    return found


def _asyncio_runs(tree: ast.AST) -> list[int]:
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "run"
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "asyncio"
    ]


def _imports(tree: ast.AST) -> list[str]:
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
    return names


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: p.name)
def test_module_creates_no_loops_threads_or_executors(path: Path) -> None:
    tree = ast.parse(path.read_text(), filename=str(path))
    bad = [f"{path.name}:{line} {name}()" for line, name in _calls(tree) if name in FORBIDDEN_CALLS]
    if path.name != "cli.py":
        bad += [f"{path.name}:{line} asyncio.run()" for line in _asyncio_runs(tree)]
    bad += [f"{path.name}: imports {m}" for m in _imports(tree) if m in FORBIDDEN_IMPORTS]
    assert not bad, bad


def test_httpx_client_is_created_in_one_place_only() -> None:
    creators = [
        path.name
        for path in PACKAGE.rglob("*.py")
        for line, name in _calls(ast.parse(path.read_text()))
        if name in {"AsyncClient", "Client"}
    ]
    assert creators == ["gitlab.py"]


def test_guard_catches_a_violation(tmp_path: Path) -> None:
    """The guard itself can fail: a module that starts a thread is caught."""
    offender = tmp_path / "offender.py"
    offender.write_text("import asyncio\nasyncio.run(main())\n")
    with pytest.raises(AssertionError):
        test_module_creates_no_loops_threads_or_executors(offender)
