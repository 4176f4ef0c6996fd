"""The benchmark runs, at a small size, so that it cannot rot. Its figures are not judged."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_bench_quick_run_prints_and_writes_its_figures(tmp_path: Path) -> None:
    output = tmp_path / "results.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--output", str(output)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "webhook answer" in result.stdout and "TCP connections" in result.stdout
    figures = json.loads(output.read_text())
    assert figures["server"]["end_to_end"]["all_final"] is True
    # e. The baseline side by side: present, whatever its values.
    assert "e. baseline (python-gitlab" in result.stdout
    assert {"baseline", "ours", "ratio"} <= figures["baseline"].keys()
    assert figures["baseline"]["baseline"]["events_per_s"] > 0
    assert "errors" in figures["baseline"]["baseline"] and "errors" in figures["baseline"]["ours"]
    # g. The replicas figure: SQLite, and PostgreSQL on 1 to 3 replicas (or why not).
    assert "g. replicas" in result.stdout
    assert "sqlite, 1 process" in figures["replicas"]
    assert "cpu_ms_per_event" in figures["replicas"]["sqlite, 1 process"]
    # Calls per event type, the re-touch case included; CPU per event on both sides.
    assert "changing a file of the MR again" in result.stdout
    assert figures["baseline"]["ours"]["cpu_ms_per_event"] > 0
    assert figures["baseline"]["baseline"]["cpu_ms_per_event"] > 0
    # h. The webhook as capacity: the split of its CPU, open-loop rates, the p99 at half.
    assert "h. webhook capacity" in result.stdout
    parts = {"parse_ms", "journal_ms", "logging_ms", "response_ms"}
    assert parts <= figures["webhook"]["split"].keys()
