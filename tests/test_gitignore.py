"""Path patterns mean what git means: checked against real `git check-ignore --no-index`."""

from __future__ import annotations

import random
import shutil
import subprocess
from pathlib import Path

import pytest

from bot.gitignore import PatternError, compile_patterns, validate

# Directory and file names are kept apart, so that no case needs `x` as a file and a directory.
DIRS = ["a", "b", "src", "d1", "x y", "é", "sp ", "[x]", "**", "2d"]
FILES = ["f", "x.py", "1.txt", "t ", "t", "K9", "-", "#h", "!n", "b.c", "]", "a\\b", "ÿz"]
SEGMENTS = [
    *DIRS,
    *FILES,
    "*",
    "?",
    "**",
    "***",
    "*.py",
    "x*",
    "*y",
    "[[:digit:]]*",
    "[[:alpha:]]",
    "[[:space:]]y",
    "[[:punct:]]*",
    "[[:bogus:]]",
    "[a-c]*",
    "[!a]*",
    "[^a-z]*",
    "[]]",
    "[!]]",
    "[a-",
    "[z-a]",
    "[[x]",
    "[[:x]",
    "d?",
    "\\*",
    "\\[x]",
    "s\\p\\ ",
    "\\#h",
    "\\!n",
    "a\\",
    "?*?",
    "é*",
    "?z",
    "src**",
    "**d1",
]


def _pattern(rng: random.Random) -> str:
    segments = [rng.choice(SEGMENTS) for _ in range(rng.choice([1, 1, 2, 2, 3]))]
    text = "/".join(segments)
    if rng.random() < 0.2:
        text = "/" + text
    if rng.random() < 0.2:
        text += "/"
    if rng.random() < 0.15:
        text += rng.choice(["  ", " ", "\\ ", "\\  ", "\t"])
    if rng.random() < 0.2:
        text = "!" + text
    return text


def _path(rng: random.Random) -> str:
    return "/".join([*(rng.choice(DIRS) for _ in range(rng.randrange(4))), rng.choice(FILES)])


def _cases(seed: int, count: int) -> list[tuple[list[str], list[str]]]:
    rng = random.Random(seed)
    cases = []
    for _ in range(count):
        patterns = [_pattern(rng) for _ in range(rng.randint(1, 4))]
        paths = sorted({_path(rng) for _ in range(8)})
        cases.append((patterns, paths))
    return cases


def _git_verdicts(root: Path, cases: list[tuple[list[str], list[str]]]) -> dict[str, bool]:
    """git's verdict on every case, in one repository: case N's patterns are the .gitignore
    of directory cN/, whose patterns apply below it as a root .gitignore's do at the root."""
    subprocess.run(["git", "init", "-q", str(root)], check=True)  # noqa: S607
    asked: list[str] = []
    for number, (patterns, paths) in enumerate(cases):
        base = root / f"c{number}"
        base.mkdir()
        (base / ".gitignore").write_bytes(("\n".join(patterns) + "\n").encode())
        for path in paths:
            file = base / path
            file.parent.mkdir(parents=True, exist_ok=True)
            file.touch()
            asked.append(f"c{number}/{path}")
    # -z: paths unquoted; -n -v: one record for every path, with the pattern that decided.
    command = ["git", "-C", str(root), "check-ignore", "--no-index", "-v", "-n", "-z", "--stdin"]
    out = subprocess.run(
        command,
        input=("\0".join(asked) + "\0").encode(),
        capture_output=True,
        check=False,  # exit status 1 means "nothing ignored"
    ).stdout.decode()
    fields = out.split("\0")
    verdicts: dict[str, bool] = {}
    for i in range(0, len(fields) - 1, 4):
        source, _, pattern, path = fields[i : i + 4]
        verdicts[path] = bool(source) and not pattern.startswith("!")
    assert len(verdicts) == len(asked)
    return verdicts


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_generated_patterns_agree_with_git_check_ignore(tmp_path: Path) -> None:
    cases = _cases(seed=16, count=300)
    verdicts = _git_verdicts(tmp_path, cases)
    disagreements = []
    for number, (patterns, paths) in enumerate(cases):
        spec = compile_patterns(tuple(patterns))
        for path in paths:
            git = verdicts[f"c{number}/{path}"]
            if spec.match_file(path) != git:
                disagreements.append((patterns, path, git))
    assert disagreements == []
    compared = sum(len(paths) for _, paths in cases)
    assert compared > 2000  # the generator really produced a few thousand comparisons


@pytest.mark.parametrize(
    ("patterns", "path", "ignored"),
    [
        # A directory git excludes is never entered: `!` cannot bring a file back from it.
        (["vendor/", "!vendor/keep.txt"], "vendor/keep.txt", True),
        (["vendor/*", "!vendor/keep.txt"], "vendor/keep.txt", False),
        # POSIX classes, as git's wildmatch.c
        (["[[:digit:]]*"], "1.txt", True),
        (["[[:digit:]]*"], "a1", False),
        # Trailing spaces go unless escaped
        (["a  "], "a", True),
        (["a\\ "], "a ", True),
        (["a\\ "], "a", False),
        # `dir/**/` matches directories below dir, so only files in them
        (["dir/**/"], "dir/f", False),
        (["dir/**/"], "dir/sub/f", True),
        # `?` is one byte, as git compares UTF-8 bytes
        (["?"], "é", False),
        (["??"], "é", True),
        # git's literal-prefix shortcut: `foo**/bar` matches `foobar`
        (["foo**/bar"], "foobar", True),
    ],
)
def test_git_semantics(patterns: list[str], path: str, ignored: bool) -> None:
    assert compile_patterns(tuple(patterns)).match_file(path) is ignored


@pytest.mark.parametrize("pattern", ["[abc", "x[[:digits:]]", "trailing\\", "a\nb"])
def test_patterns_that_can_never_match_are_config_errors(pattern: str) -> None:
    with pytest.raises(PatternError):
        validate([pattern])


def test_hostile_patterns_match_in_linear_time() -> None:
    # The ReDoS shape of pathspec issue #131: `**` chains against a long near miss.
    pattern = "/".join(["a", *(["**", "b"] * 40), "c"])
    path = "/".join(["a", *(["b"] * 400)])
    spec = compile_patterns((pattern, "*" * 200 + "x", "[!a]" * 100))
    assert spec.match_file(path) is False
