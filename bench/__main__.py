"""`python -m bench`: figures measured against the fake GitLab over loopback.

Prints a table and writes bench/results.json. Each figure comes from one run; compare
figures as ratios within the same run, since these machines are noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

from bench import baseline, calls, replicas, server, webhook


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--output", type=Path, default=Path(__file__).with_name("results.json"))
    parser.add_argument(
        "--quick", action="store_true", help="a few events only (the smoke test's size)"
    )
    args = parser.parse_args()
    sizes = (
        {"senders": 10, "latency_requests": 50, "events": 20, "mrs": 5, "rss_events": 100}
        if args.quick
        else {}
    )
    results = {
        "calls_per_event": asyncio.run(calls.measure()),
        "server": asyncio.run(server.measure(**sizes)),
    }
    # e. The baseline on part b's workload, beside part b's figures from this same run.
    end_to_end = results["server"]["end_to_end"]
    measured = asyncio.run(
        baseline.measure(
            events=end_to_end["events"],
            mrs=end_to_end["mrs"],
            latency=end_to_end["gitlab_latency_ms"] / 1000,
        )
    )
    results["baseline"] = baseline.compare(measured, end_to_end)
    results["replicas"] = asyncio.run(
        replicas.measure(events=end_to_end["events"], mrs=end_to_end["mrs"])
    )
    capacity = {"rates": (250.0, 500.0), "seconds": 1.0} if args.quick else {}
    results["webhook"] = asyncio.run(webhook.measure(**capacity))
    print(calls.table(results["calls_per_event"]))
    print()
    print(server.table(results["server"]))
    print(baseline.table(results["baseline"]))
    print(replicas.table(results["replicas"]))
    print(webhook.table(results["webhook"]))
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwritten to {args.output}")


if __name__ == "__main__":
    main()
