"""`compliance-bot audit GROUP --waivers`: the trail the server's journal holds, listed by a
real `audit` process, for the group's projects only."""

from __future__ import annotations

import json
import time
from pathlib import Path

from bot.stores import open_store
from bot.waivers import NewWaiver
from tests.checks.test_waive import RULE, _comment, _failing_mr, _status
from tests.conftest import running_bot
from tests.fake_gitlab import FakeGitLab
from tests.test_audit import cli

DAY = 86400.0


async def test_the_audit_lists_active_expired_and_withdrawn_waivers(
    fake: FakeGitLab, tmp_path: Path
) -> None:
    journal = tmp_path / "journal.db"
    async with running_bot(fake, compliance_db=journal) as bot:
        mr = await _failing_mr(fake, bot)
        await _comment(fake, bot, mr, "maria", f"/compliance waive {RULE} for 1d short one")
        await _comment(fake, bot, mr, "maria", f"/compliance unwaive {RULE}")
        await _comment(fake, bot, mr, "maria", f"/compliance waive {RULE} for 14d =1+1 | <b>")
        assert _status(fake, mr)["description"] == "0 errors, 1 waived"
    now = time.time()
    outside = fake.add_project(path_with_namespace="other/thing")
    async with open_store(str(journal)) as store:
        # One the journal holds from last month, long expired.
        await store.add_waiver(
            NewWaiver(mr.project_id, mr.iid, RULE, "", ("f",), "old", "maria",
                      now - 40 * DAY, now - 10 * DAY, "b" * 40)
        )  # fmt: skip
        # A waiver of a project outside the group is not the group's.
        await store.add_waiver(
            NewWaiver(outside.id, 1, RULE, "", ("f",), "elsewhere", "olga", now, now + DAY,
                      "c" * 40)
        )  # fmt: skip

    code, out, err = await cli(fake, "acme", "--waivers", "--journal", str(journal))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "3 waivers (1 active, 1 expired, 1 withdrawn)"
    assert "elsewhere" not in out
    assert lines[1].startswith(f"expired   acme/widget!{mr.iid} {RULE}: by @maria until ")
    assert lines[2].startswith(f"active    acme/widget!{mr.iid} {RULE}: by @maria until ")
    assert lines[3].endswith("withdrawn by @maria: short one")

    code, out, err = await cli(
        fake, "acme", "--waivers", "--format", "json", env={"COMPLIANCE_DB": str(journal)}
    )
    assert code == 0, err
    waivers = json.loads(out)["waivers"]
    assert [w["reason"] for w in waivers] == ["old", "=1+1 | <b>", "short one"]
    newest = waivers[1]
    assert newest["project"] == "acme/widget" and newest["merge_request"] == mr.iid
    assert newest["by"] == "maria" and newest["head_sha"] == mr.head_sha
    assert newest["findings"] == 1 and newest["until"].endswith(" UTC")

    code, out, err = await cli(
        fake, "acme", "--waivers", "--format", "csv", "--journal", str(journal)
    )
    assert code == 0 and "'=1+1 | <b>" in out  # no formula for a spreadsheet

    code, _, err = await cli(fake, "acme", "--waivers", "--journal", str(tmp_path / "nope.db"))
    assert code == 2 and "no such file" in err
    assert not (tmp_path / "nope.db").exists()
