"""The engine through the Source seam with a test double: the third Source, beside GitLab's
and a git checkout's (DESIGN.md, `source`). The engine asks the double for exactly what the
enabled rules need, and judges what it answers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from bot.config import load
from bot.engine import context_for, judge, plan, read, reads_for, report_facts
from bot.model import ChangedFile, Commit
from bot.rules.base import CodeOwnersFile, ProjectFacts, Scope
from bot.rules.catalog import all_rules
from bot.source import Changes, Signatures, Where

HEAD = "b" * 40
BASE = "a" * 40


@dataclass
class DictSource:
    """A Source from literals, recording what it was asked (to prove the engine asks for no
    more than the enabled rules need)."""

    commits_: tuple[Commit, ...] = ()
    files: tuple[ChangedFile, ...] = ()
    paths: frozenset[str] = frozenset()
    asked: list[str] = field(default_factory=list)

    async def config_file(self, revision: str) -> tuple[str, str] | None:
        self.asked.append("config_file")
        return None

    async def commits(self, base: str, head: str) -> tuple[Commit, ...]:
        self.asked.append("commits")
        return self.commits_

    async def changes(self, base: str, head: str) -> Changes:
        self.asked.append("changes")
        return Changes(files=self.files)

    async def tree_paths(self, revision: str) -> frozenset[str]:
        self.asked.append("tree_paths")
        return self.paths

    async def codeowners(self, revision: str) -> CodeOwnersFile | None:
        self.asked.append("codeowners")
        return None

    async def file_sizes(self, revision: str, paths: Sequence[str]) -> dict[str, int]:
        self.asked.append("file_sizes")
        return dict.fromkeys(paths, 10)

    async def file_texts(self, revision: str, paths: Sequence[str]) -> dict[str, str]:
        self.asked.append("file_texts")
        return {}

    async def project(self) -> ProjectFacts | None:
        self.asked.append("project")
        return None

    async def signatures(self, shas: Sequence[str]) -> Signatures:
        self.asked.append("signatures")
        return Signatures()


def _only(*enabled: str) -> str:
    """A config with `enabled` rules on (as errors) and every other rule off."""
    lines = [
        f"  {rule.id}: {{severity: {'error' if rule.id in enabled else repr('off')}}}\n"
        for rule in all_rules()
    ]
    return "rules:\n" + "".join(lines)


async def _judged(source: DictSource, config_text: str) -> list[tuple[str, str]]:
    checks = plan(load(config_text, ".gitlab/compliance.yml"), Scope.PUSH, "main")
    reads = reads_for(checks.needs, Scope.PUSH)
    where = Where(base=BASE, head=HEAD, tree_at=HEAD, branch="main", target_branch="main")
    inputs = await read(source, reads, where)
    context = context_for(checks, Scope.PUSH, inputs, where)
    report = judge(checks, context, head_sha=HEAD, facts=report_facts(reads, Scope.PUSH, inputs))
    return [(f.rule, f.location) for f in report.findings]


async def test_the_engine_judges_what_a_test_double_source_answers() -> None:
    source = DictSource(
        commits_=(Commit(sha=HEAD, message="Added stuff", parent_ids=(BASE,)),),
        files=(ChangedFile(old_path=".env", new_path=".env", new_file=True, diff="+A=1\n"),),
    )
    config = _only("commit.conventional", "files.prohibited")
    findings = await _judged(source, config)
    assert ("files.prohibited", ".env") in findings
    assert any(rule == "commit.conventional" for rule, _ in findings)
    # Commits and changes come from one range; no tree, sizes, texts or project were needed.
    assert set(source.asked) == {"commits", "changes"}


async def test_a_rule_switched_off_costs_no_read() -> None:
    source = DictSource()
    off = _only()
    assert await _judged(source, off) == []
    assert source.asked == []
