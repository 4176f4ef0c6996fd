"""Group policy and `extends`, the pure resolution: texts in, rules and their origins out."""

from __future__ import annotations

import pytest

from bot.config import ConfigError
from bot.policy import PolicyUnreadable, explain, parse_extends, resolve_texts

PROJECT = ".gitlab/compliance.yml"
TOP = "acme/compliance-policy:.gitlab/compliance-policy.yml"
SUB = "acme/platform/compliance-policy:.gitlab/compliance-policy.yml"


def test_precedence_left_to_right_maps_merge_lists_replace() -> None:
    resolution = resolve_texts(
        (
            PROJECT,
            "extends: ['acme/presets:b.yml']\nrules:\n  merge_request.labels: {any_of: [x]}\n",
        ),
        policies=[
            (TOP, "rules:\n  merge_request.labels: {severity: warning, any_of: [a, b]}\n"),
            (SUB, "rules:\n  merge_request.labels: {none_of: [wip]}\n"),
        ],
        extends={"acme/presets:b.yml": "rules:\n  merge_request.labels: {severity: error}\n"},
        base={"rules": {"merge_request.labels": {"all_of": ["base"]}}},
    )
    labels = resolution.config.rule("merge_request.labels")
    assert labels.severity == "error"  # the extends target, after both policies
    assert list(labels.any_of) == ["x"]  # type: ignore[attr-defined]  # the project's list
    assert list(labels.none_of) == ["wip"]  # type: ignore[attr-defined]  # maps merged
    assert list(labels.all_of) == ["base"]  # type: ignore[attr-defined]  # instance defaults
    origins = resolution.origins
    assert str(origins[("rules", "merge_request.labels", "severity")]) == "acme/presets:b.yml:2"
    assert str(origins[("rules", "merge_request.labels", "any_of")]) == f"{PROJECT}:3"
    assert str(origins[("rules", "merge_request.labels", "none_of")]) == f"{SUB}:2"
    assert str(origins[("rules", "merge_request.labels", "all_of")]) == "instance defaults"


def test_a_locked_rule_cannot_be_weakened_and_the_attempt_is_reported() -> None:
    resolution = resolve_texts(
        (
            PROJECT,
            "rules:\n"
            "  commit.dco: {severity: 'off', exempt_authors: [me], branches: [main]}\n"
            "  merge_request.title: {severity: error, pattern: '^[A-Z]+-[0-9]+ '}\n",
        ),
        policies=[
            (TOP, "rules:\n  commit.dco:\n    severity: error\n    locked: true\n"),
            (
                SUB,
                "rules:\n  commit.dco: {severity: warning}\n"
                "  merge_request.title: {severity: warning}\n",
            ),
        ],
    )
    dco = resolution.config.rule("commit.dco")
    assert dco.severity == "error"
    assert list(dco.exempt_authors) == []  # type: ignore[attr-defined]
    assert list(dco.branches) == []
    # A rule the policy did not lock is the project's to tighten (or loosen).
    assert resolution.config.rule("merge_request.title").severity == "error"
    ignored = [str(i) for i in resolution.ignored]
    assert ignored == [
        f'ignored commit.dco severity: "warning" at {SUB}:2: locked by {TOP}:2',
        f'ignored commit.dco severity: "off" at {PROJECT}:2: locked by {TOP}:2',
        f'ignored commit.dco exempt_authors: ["me"] at {PROJECT}:2: locked by {TOP}:2',
        f'ignored commit.dco branches: ["main"] at {PROJECT}:2: locked by {TOP}:2',
    ]
    assert any(n.startswith("Policy acme/compliance-policy") for n in resolution.config.notes)
    explained = explain(resolution).splitlines()
    [line] = [x for x in explained if 'rules.commit.dco.severity="error"' in x]
    assert line.startswith(f"{TOP}:3 (locked) ")


def test_a_locked_rule_may_be_raised() -> None:
    resolution = resolve_texts(
        (PROJECT, "rules:\n  merge_request.draft: {severity: error}\n"),
        policies=[(TOP, "rules:\n  merge_request.draft: {severity: warning, locked: true}\n")],
    )
    assert resolution.config.rule("merge_request.draft").severity == "error"
    assert resolution.ignored == ()


def test_only_a_policy_can_lock() -> None:
    with pytest.raises(ConfigError) as raised:
        resolve_texts((PROJECT, "rules:\n  commit.dco: {severity: error, locked: true}\n"))
    assert [str(p) for p in raised.value.problems] == [
        f"{PROJECT}:2:33: locked: only a group policy can lock"
    ]


def test_cycles_and_depth_are_refused() -> None:
    with pytest.raises(PolicyUnreadable, match="a cycle"):
        resolve_texts(
            (PROJECT, "extends: ['g/a:a.yml']\n"),
            extends={
                "g/a:a.yml": "extends: ['g/b:b.yml']\n",
                "g/b:b.yml": "extends: ['g/a:a.yml']\n",
            },
        )
    chain = {f"g/p{i}:c.yml": f"extends: ['g/p{i + 1}:c.yml']\n" for i in range(5)}
    with pytest.raises(PolicyUnreadable, match="more than 3 levels"):
        resolve_texts((PROJECT, "extends: ['g/p0:c.yml']\n"), extends=chain)


def test_an_invalid_extends_target_fails_with_its_line() -> None:
    with pytest.raises(ConfigError) as raised:
        resolve_texts(
            (PROJECT, "extends: ['g/p:x.yml']\n"),
            extends={"g/p:x.yml": "rules:\n  commit.dco: {severity: loud}\n"},
        )
    assert str(raised.value.problems[0]).startswith("g/p:x.yml:2:")


def test_an_extends_target_not_at_hand_is_not_skipped() -> None:
    with pytest.raises(PolicyUnreadable) as raised:
        resolve_texts((PROJECT, "extends: ['acme/presets:base.yml@v1']\n"))
    assert str(raised.value).startswith("could not read extends target `acme/presets:base.yml@v1`")


@pytest.mark.parametrize(
    "value",
    ["acme:x.yml", "acme/p", "acme/p:../x.yml", "acme/p:/x.yml", "a/<b>:x.yml", "x" * 600],
)
def test_extends_syntax(value: str) -> None:
    assert parse_extends(value) is None
    with pytest.raises(ConfigError) as raised:
        resolve_texts((PROJECT, f"extends: [{value!r}]\n"))
    assert [str(p) for p in raised.value.problems] == [
        f"{PROJECT}:1:11: extends: not `group/project:path` or `…@ref`"
    ]


def test_extends_ref() -> None:
    ref = parse_extends("acme/sub/presets:ci/base.yml@v1.2")
    assert ref is not None and (ref.project, ref.path, ref.ref) == (
        "acme/sub/presets",
        "ci/base.yml",
        "v1.2",
    )
