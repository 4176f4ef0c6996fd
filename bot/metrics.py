"""Prometheus metrics, served at `GET /metrics`.

Each app has its own registry (not prometheus-client's global one), so two apps in one
process (tests) never share counters, and nothing is registered at import.
"""

from __future__ import annotations

import functools
import re

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "Metrics", "endpoint_template"]

_TEMPLATES = [
    (re.compile(r"^https?://[^/]+"), ""),
    (re.compile(r"^/api/v4"), ""),
    (re.compile(r"/projects/[^/]+"), "/projects/:id"),
    (re.compile(r"/groups/[^/]+"), "/groups/:id"),
    (re.compile(r"/merge_requests/\d+"), "/merge_requests/:iid"),
    (re.compile(r"/notes/\d+"), "/notes/:note_id"),
    (re.compile(r"/(commits|statuses)/[0-9a-f]{7,64}"), r"/\1/:sha"),
    (re.compile(r"/files/[^/]+"), "/files/:file_path"),
    (re.compile(r"\?.*$"), ""),
]


def endpoint_template(path: str) -> str:
    """`/projects/12/merge_requests/3/notes` -> `/projects/:id/merge_requests/:iid/notes`:
    a label with a bounded number of values, whatever the ids."""
    for pattern, replacement in _TEMPLATES:
        path = pattern.sub(replacement, path)
    return path


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        counter = functools.partial(Counter, registry=self.registry)
        self.deliveries = counter(
            "compliance_deliveries",
            "Webhook deliveries by event and outcome.",
            ["event", "outcome"],
        )
        self.queue_depth = Gauge(
            "compliance_queue_depth", "Checks waiting in the journal.", registry=self.registry
        )
        self.check_duration = Histogram(
            "compliance_check_duration_seconds",
            "Time one check took, from claim to publication.",
            ["kind", "outcome"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=self.registry,
        )
        self.gitlab_calls = counter(
            "compliance_gitlab_calls",
            "GitLab API calls by method, endpoint template and HTTP status (0: no answer).",
            ["method", "endpoint", "status"],
        )
        self.gitlab_retries = counter("compliance_gitlab_retries", "GitLab calls retried.")
        self.rate_limit_wait = counter(
            "compliance_gitlab_rate_limit_wait_seconds",
            "Time spent waiting as GitLab's 429 Retry-After asked.",
        )
        self.superseded = counter(
            "compliance_jobs_superseded",
            "Checks dropped because a newer head of the same target arrived.",
        )

    def observe_call(self, method: str, path: str, status: int) -> None:
        self.gitlab_calls.labels(method, endpoint_template(path), str(status)).inc()

    def observe_retry(self, status: int, wait: float) -> None:
        self.gitlab_retries.inc()
        if status == 429:
            self.rate_limit_wait.inc(wait)

    def render(self) -> bytes:
        return generate_latest(self.registry)
