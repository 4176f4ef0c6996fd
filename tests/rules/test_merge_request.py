from __future__ import annotations

import pytest

from bot.model import Severity
from bot.rules import merge_request


@pytest.mark.parametrize(
    "title", ["Draft: add x", "draft: add x", "[Draft] add x", "(Draft) add x", "Draft - add x"]
)
def test_draft_titles_are_warnings(title: str) -> None:
    outcome = merge_request.not_draft(title, draft=False)
    assert [f.severity for f in outcome.findings] == [Severity.WARNING]


def test_draft_flag_alone_is_a_draft_and_plain_titles_are_not() -> None:
    assert not merge_request.not_draft("feat: add x", draft=True).passed
    assert merge_request.not_draft("feat: drafting rules", draft=False).passed


def test_empty_description_is_an_error() -> None:
    outcome = merge_request.description_present(" \n\t")
    assert [f.severity for f in outcome.findings] == [Severity.ERROR]
    assert merge_request.description_present("Fixes #1").passed
