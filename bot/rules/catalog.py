"""Every rule the bot knows, in the order the note lists them."""

from __future__ import annotations

from functools import cache
from typing import Any

from bot.rules import commits, files, merge_request, repository
from bot.rules.base import Rule, check_rule_ids


@cache
def all_rules() -> tuple[Rule[Any], ...]:
    rules = (*commits.RULES, *merge_request.RULES, *files.RULES, *repository.RULES)
    check_rule_ids(rules)
    return rules


def rule_by_id(rule_id: str) -> Rule[Any]:
    for rule in all_rules():
        if rule.id == rule_id:
            return rule
    raise KeyError(rule_id)
