"""Hypothesis strategies: GitLab's published payloads with some values swapped for hostile
ones (wrong types, out-of-range numbers, deep nesting), for fuzzing the webhook."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from hypothesis import strategies as st

from tests.payloads import fixture

# The published payloads the bot acts on, with the event header GitLab sends them under.
PAYLOADS = (
    ("Merge Request Hook", "merge_request.json"),
    ("Merge Request Hook", "merge_request_open_v18.json"),
    ("Merge Request Hook", "merge_request_update_oldrev_partial.json"),
    ("Push Hook", "push.json"),
    ("Note Hook", "note_merge_request.json"),
    ("System Hook", "push.json"),
)

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 1, 2**31, 2**63 - 1, 2**63, 2**64]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from(["0" * 40, "a" * 40, "refs/heads/main", "open", "update", "MergeRequest"]),
)
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a JSON document a value sits at."""
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*prefix, index))
    return found


def _set(document: Any, path: tuple[Any, ...], value: Any) -> None:
    for part in path[:-1]:
        document = document[part]
    document[path[-1]] = value


@st.composite
def mutated_payloads(draw: st.DrawFn) -> tuple[str, bytes]:
    """(event name, body): a published payload with 1 to 4 values replaced, and sometimes
    one of them nested deeper than any parser should follow."""
    event, name = draw(st.sampled_from(PAYLOADS))
    payload = fixture(name)
    paths = _paths(payload)
    for path in draw(st.lists(st.sampled_from(paths), min_size=1, max_size=4, unique=True)):
        value = draw(_values)
        # An earlier mutation may have replaced a parent of this path.
        with contextlib.suppress(KeyError, IndexError, TypeError):
            _set(payload, path, value)
    body = json.dumps(payload)
    depth = draw(st.sampled_from([0, 0, 0, 900, 5000]))
    if depth:
        deep = "[" * depth + "]" * depth
        body = body.replace("{", '{"deep": ' + deep + ", ", 1)
    return event, body.encode()
