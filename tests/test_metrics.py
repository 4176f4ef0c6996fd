"""`GET /metrics` after real traffic."""

from __future__ import annotations

from bot.metrics import endpoint_template
from tests.conftest import Bot
from tests.fake_gitlab import FakeGitLab
from tests.scenarios import compliant_project, hook_for


def test_endpoint_templates_have_bounded_values() -> None:
    assert endpoint_template("/api/v4/projects/12/merge_requests/3/notes/99") == (
        "/projects/:id/merge_requests/:iid/notes/:note_id"
    )
    assert endpoint_template("/api/v4/projects/a%2Fb/statuses/" + "a" * 40) == (
        "/projects/:id/statuses/:sha"
    )
    assert endpoint_template("/api/v4/projects/1/repository/files/x%2Fy/raw?ref=main") == (
        "/projects/:id/repository/files/:file_path/raw"
    )


async def test_metrics_count_what_happened(fake: FakeGitLab, bot: Bot) -> None:
    project = compliant_project(fake)
    fake.commit(project.id, "feature", message="feat: x")
    mr = fake.open_mr(project.id, source_branch="feature", description="x")
    fake.fail("GET", r"/merge_requests/\d+/diffs$", 429, times=1, retry_after=0)
    await bot.send("Merge Request Hook", hook_for(mr))
    await bot.send("Merge Request Hook", hook_for(mr), token="wrong")
    await bot.send("Pipeline Hook", {"object_kind": "pipeline"})
    await bot.settle()
    text = (await bot.client.get(f"{bot.url}/metrics")).text
    assert 'compliance_deliveries_total{event="Merge Request Hook",outcome="accepted"} 1.0' in text
    assert (
        'compliance_deliveries_total{event="Merge Request Hook",outcome="invalid token"} 1.0'
        in text
    )
    assert 'compliance_deliveries_total{event="other",outcome="ignored"} 1.0' in text
    assert "compliance_queue_depth 0.0" in text
    assert (
        'compliance_check_duration_seconds_count{kind="merge_request",outcome="done"} 1.0' in text
    )
    assert (
        'compliance_gitlab_calls_total{endpoint="/projects/:id/merge_requests/:iid/diffs",'
        'method="GET",status="429"} 1.0'
    ) in text
    assert "compliance_gitlab_retries_total 1.0" in text
    # A quick check posts its verdict only, no `running` before it.
    assert 'endpoint="/projects/:id/statuses/:sha",method="POST",status="201"} 1.0' in text
