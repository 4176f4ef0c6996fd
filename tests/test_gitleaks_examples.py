"""files.secrets on gitleaks' own published examples (tests/fixtures/gitleaks/, see SOURCES.md).

`fps` are the strings gitleaks' rule tests say its rule must NOT report; `tps` (the literal
ones) are strings it must report. Run `python -m tests.test_gitleaks_examples` for the rates.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import re2

from bot.rules import files

EXAMPLES = Path(__file__).resolve().parent / "fixtures" / "gitleaks" / "examples.json"

# The bot folds some of gitleaks' rules into one kind (bot/rules/files.py says which).
FOLDED = {
    "gitlab-pat-routable": "gitlab-pat",
    "gitlab-runner-authentication-token-routable": "gitlab-runner-authentication-token",
    "digitalocean-access-token": "digitalocean-pat",
    "digitalocean-refresh-token": "digitalocean-pat",
    "vault-batch-token": "vault-service-token",
    "shopify-custom-access-token": "shopify-access-token",
    "shopify-private-app-access-token": "shopify-access-token",
    "shopify-shared-secret": "shopify-access-token",
    "anthropic-admin-api-key": "anthropic-api-key",
    "huggingface-organization-api-token": "huggingface-access-token",
}


@cache
def examples() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(EXAMPLES.read_text())
    return data


def kinds_found(text: str, path: str = "example.txt") -> set[str]:
    lines = list(enumerate(text.split("\n"), start=1))
    return {match.kind.id for match in files.find_secrets(lines, path=path)}


@dataclass
class Rates:
    false_positives: list[tuple[str, str]]  # (rule, example) the rule's own kind reported
    any_kind_on_fps: list[tuple[str, str]]  # (rule, example) some kind reported
    fps: int
    missed: list[tuple[str, str]]  # literal tps nothing reported
    tps: int
    # (rule, example) reported because another gitleaks rule folded into the same kind
    # matches it: a true positive of that rule (an api03 key is a negative example of the
    # admin-key rule, and the bot's one Anthropic kind reports both).
    sibling_matches: list[tuple[str, str]]


def _sibling_matches(rule: str, text: str) -> bool:
    kind = FOLDED.get(rule, rule)
    siblings = [r for r in examples() if r != rule and FOLDED.get(r, r) == kind]
    return any(re2.search(examples()[r]["regex"], text) for r in siblings)


def measure() -> Rates:
    rates = Rates([], [], 0, [], 0, [])
    for rule, data in examples().items():
        kind = FOLDED.get(rule, rule)
        for text in data["fps"]:
            rates.fps += 1
            found = kinds_found(text)
            if kind in found and _sibling_matches(rule, text):
                rates.sibling_matches.append((rule, text))
            elif kind in found:
                rates.false_positives.append((rule, text))
            if found:
                rates.any_kind_on_fps.append((rule, text))
        for text in data["tps"]:
            rates.tps += 1
            if not kinds_found(text):
                rates.missed.append((rule, text))
    return rates


def test_gitleaks_negative_examples_are_not_reported() -> None:
    rates = measure()
    assert rates.fps > 90
    assert rates.false_positives == []


def test_gitleaks_literal_positive_examples_are_reported() -> None:
    rates = measure()
    assert rates.tps > 70
    # The few the bot misses on purpose, each for a reason in bot/rules/files.py.
    assert len(rates.missed) <= 10, rates.missed


if __name__ == "__main__":
    rates = measure()
    print(
        f"false positives (the rule's own kind): {len(rates.false_positives)}/{rates.fps} "
        f"= {len(rates.false_positives) / rates.fps:.1%}"
    )
    print(
        f"negative examples with any finding:    {len(rates.any_kind_on_fps)}/{rates.fps} "
        f"= {len(rates.any_kind_on_fps) / rates.fps:.1%}"
    )
    print(f"of which another folded rule's match:  {len(rates.sibling_matches)}")
    print(f"literal positive examples missed:     {len(rates.missed)}/{rates.tps}")
    for rule, text in rates.any_kind_on_fps:
        print("  FP", rule, repr(text[:100]))
    for rule, text in rates.missed:
        print("  missed", rule, repr(text[:100]))
