"""Kinds of failure that the parts agree on, without importing each other."""

from __future__ import annotations


class Retryable(Exception):
    """A check that could not complete for a reason that may pass (GitLab unreachable, a
    5xx, a rate limit): the job runner marks its job failed, and the sweeper runs it again."""
