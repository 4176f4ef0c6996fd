"""The import rule of the README's Architecture section, enforced.

- The pure core (the rules, webhook parsing, the renderers) imports no GitLab client, no
  store and no app: what it is given is all it sees, and a test can hand it literals.
- The engine, and the engine-side modules a face calls (the git checkout's `local`, its
  check's `checkout`, the audit's checking `audit`), import no face (cli, check_command,
  audit_command, hooks, app, the checks, routing): every face uses the one engine, never the
  other way round.
- A Source imports no engine: it answers what it is asked, and judges nothing.

Imports count wherever they are written (a function's body, `TYPE_CHECKING`), and
through other modules of the bot: a rule importing a helper that imports the store breaks
the rule as much as importing the store itself.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "bot"

ENGINE = ("bot.engine", "bot.local", "bot.checkout", "bot.audit")
PURE = ("bot.rules", "bot.webhook", "bot.report", "bot.model")
IO_AND_APP = ("bot.gitlab", "bot.store", "bot.store_postgres", "bot.stores", "bot.app")
FACES = (
    "bot.cli",
    "bot.check_command",
    "bot.audit_command",
    "bot.hooks",
    "bot.app",
    "bot.checks",
    "bot.routing",
)


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module(p): p for p in PACKAGE.rglob("*.py")}


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


@cache
def _direct(module: str) -> frozenset[str]:
    """The bot modules `module` imports, wherever in the file."""
    tree = ast.parse(MODULES[module].read_text(), filename=str(MODULES[module]))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            # `from bot import commands` imports the module bot.commands
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return frozenset(name for name in found if name in MODULES)


def _reachable(module: str) -> dict[str, str]:
    """Every bot module `module` imports, directly or not: name -> the module importing it."""
    seen: dict[str, str] = {}
    todo = [module]
    while todo:
        current = todo.pop()
        for imported in _direct(current):
            if imported not in seen and imported != module:
                seen[imported] = current
                todo.append(imported)
    return seen


def _violations(modules: tuple[str, ...], forbidden: tuple[str, ...]) -> list[str]:
    return [
        f"{module} -> {name} (imported by {by})"
        for module in sorted(MODULES)
        if _within(module, modules)
        for name, by in sorted(_reachable(module).items())
        if _within(name, forbidden)
    ]


def test_the_modules_are_found() -> None:
    assert {"bot.engine", "bot.rules.base", "bot.webhook", "bot.source"} <= set(MODULES)


@pytest.mark.parametrize(
    ("modules", "forbidden"),
    [
        (PURE, IO_AND_APP),
        (ENGINE, FACES),
        (("bot.source",), ("bot.engine", *FACES)),
    ],
    ids=["pure core: no GitLab, store or app", "engine: no face", "source: no engine"],
)
def test_imports_follow_the_architecture(
    modules: tuple[str, ...], forbidden: tuple[str, ...]
) -> None:
    assert _violations(modules, forbidden) == []


def test_a_forbidden_import_is_seen(tmp_path: Path) -> None:
    # The checker itself: a rule module importing the store would be reported.
    _direct.cache_clear()
    MODULES["bot.rules.offender"] = tmp_path / "offender.py"
    (tmp_path / "offender.py").write_text("def f():\n    from bot.store import Store\n")
    try:
        assert _violations(("bot.rules.offender",), IO_AND_APP) == [
            "bot.rules.offender -> bot.store (imported by bot.rules.offender)"
        ]
    finally:
        del MODULES["bot.rules.offender"]
        _direct.cache_clear()
