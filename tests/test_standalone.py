"""The repository stands alone: nothing in the code, the tests or the benchmarks reads a file
outside the checkout or names one machine's path, so a clone anywhere runs its own tests."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# What reaching outside the checkout looks like in this code base: a relative path that climbs
# above it, a `parents[N]` walk past the repository root, or an absolute path of a machine.
OUTSIDE = re.compile(
    r"\.\./shared"
    r"|/work/"
    r"|/home/\w"
    r"|/root/"
    r"|parents\[(?:[2-9]|\d{2,})\]"
    r"|\"shared\"\s*/"
)


def _sources() -> list[Path]:
    files: list[Path] = []
    for folder in ("bot", "tests", "bench"):
        files.extend(p for p in (ROOT / folder).rglob("*.py") if ".venv" not in p.parts)
    files.extend([ROOT / "Dockerfile", ROOT / ".ci" / "run"])
    return sorted(files)


def test_no_file_reads_or_names_a_path_outside_the_repository() -> None:
    here = Path(__file__).resolve()
    offenders = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in _sources()
        if path != here
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if OUTSIDE.search(line)
    ]
    assert offenders == []


# Built in pieces, so that this file does not itself look like what it looks for.
@pytest.mark.parametrize(
    "line", ["FIXTURES = Path(x).parents[2] / " + '"shared"', "see " + "/work" + "/x"]
)
def test_the_check_catches_what_it_looks_for(line: str) -> None:
    assert OUTSIDE.search(line)


def test_every_fixture_names_its_source() -> None:
    fixtures = ROOT / "tests" / "fixtures"
    for folder in sorted(p for p in fixtures.iterdir() if p.is_dir()):
        sources = (folder / "SOURCES.md").read_text()
        for data in folder.glob("*.json"):
            assert f"`{data.name}`" in sources, data
