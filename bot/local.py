"""The git Source: what the rules need, read from a local git checkout instead of GitLab.

`compliance-bot check` (on a laptop or in a GitLab CI job) and `compliance-bot commit-msg`
judge with the same engine as the server: the config decides the plan (`engine.plan`) and the
reads (`engine.reads_for`), `engine.read` asks this module's `GitSource` for them, and
`engine.judge` runs the rules. No rule logic lives here. What git cannot tell (the project's
description and topics, the merge request's title and labels, whether GitLab verified a
signature) is either given by the caller (from CI's predefined variables or GitLab's API) or
reported as *not judged*: never as passed.

Revisions, as GitLab reads them for a merge request or a compare:

- commits: `git log base..head`, oldest first (GitLab lists an MR's commits as those of the
  head that the target branch does not have);
- changes: `git diff base...head`, i.e. from the merge-base, as the MR's diffs are
  (https://docs.gitlab.com/api/merge_requests/#list-merge-request-diffs) and as the compare API
  does by default (`straight=false`, https://docs.gitlab.com/api/repositories/#compare-branches-tags-or-commits);
- repository files: the root and `.gitlab/` of the tree at head (the server applies an MR's
  changes to the target branch's tree; for a branch based on the target both are the same);
- the config: the tree at the base revision, never the code under review (DESIGN.md,
  invariant 9).

Git runs as a synchronous subprocess, inside the CLI's one event loop: nothing else runs
on it meanwhile.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bot.config import (
    CONFIG_PATHS,
    MAX_CONFIG_BYTES,
    Config,
    ConfigError,
    default_config,
    too_large,
)
from bot.engine import Inputs, Plan, judge_inputs, read, reads_for
from bot.model import ChangedFile, Commit, Report
from bot.report import NotJudged
from bot.rules import merge_request as merge_request_rules
from bot.rules.base import (
    CodeOwnersFile,
    Fact,
    MergeRequestFacts,
    Need,
    ProjectFacts,
    Rule,
    Scope,
)
from bot.source import (
    CODEOWNERS_PATHS,
    GITLAB_DIR,
    MAX_CODEOWNERS_BYTES,
    Changes,
    GitLabSource,
    Signatures,
    Where,
    file_text,
)

ZERO_SHA = "0" * 40

# The same bound the GitLab client puts on a listing (bot/gitlab.py DEFAULT_MAX_ITEMS).
MAX_COMMITS = 10_000

# GitLab leaves a file's diff out of the API (`too_large`) past the instance's "maximum diff
# patch size", 200 KiB by default (https://docs.gitlab.com/administration/diff_limits/). The
# server then reads the whole file, up to its bounds (source.MAX_TEXT_READS files of
# source.MAX_TEXT_BYTES, source.MAX_TEXT_TOTAL_BYTES in all), or reports it as not scanned;
# so does the git Source, so that a check gives the same verdict here as on the server, and
# memory stays bounded per file.
MAX_FILE_DIFF_BYTES = 200 * 1024

# Merge request rules judge `context.merge_request`, which git does not have: its title,
# description, labels and people come from GitLab. These three read only what git knows (the
# branch names and the changes), so a local check judges them; the others are not judged.
MR_RULES = frozenset(rule.id for rule in merge_request_rules.RULES)
MR_RULES_FROM_GIT = frozenset(
    {"merge_request.size", "merge_request.target_branch", "merge_request.source_branch"}
)

_NO_PROJECT = (
    "needs the project's description and topics, which only GitLab's API gives: run it in "
    "GitLab CI with COMPLIANCE_TOKEN set, or let the server judge it"
)
_NO_MERGE_REQUEST = (
    "needs the merge request's title, description, labels or people, which only GitLab has: "
    "it is judged in a merge request pipeline and by the server"
)
_NO_BRANCH = "HEAD is detached, so there is no source branch name to judge"


class GitError(Exception):
    """Git could not give what was asked: not a repository, an unknown revision, a failure."""


# -- running git ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Git:
    """One repository's `git`, run synchronously with a clean, predictable output format."""

    root: Path

    def run(
        self, *args: str, input: bytes | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[bytes]:
        # A user's config must not change what is parsed: paths unquoted, no colour, no
        # pager. (The diff's own options, `_DIFF_OPTIONS`, pin the rest.)
        command = [
            "git",
            "-C",
            str(self.root),
            "-c",
            "core.quotePath=false",
            "-c",
            "color.ui=never",
            "--no-pager",
            *args,
        ]
        try:
            result = subprocess.run(  # noqa: S603 (fixed argv, no shell)
                command, input=input, capture_output=True, check=False
            )
        except FileNotFoundError:
            raise GitError("git is not installed (or not on PATH)") from None
        if check and result.returncode != 0:
            message = result.stderr.decode("utf-8", "replace").strip().splitlines()
            raise GitError(f"git {args[0]} failed: {message[-1] if message else result}")
        return result

    def text(self, *args: str) -> str:
        return self.run(*args).stdout.decode("utf-8", "replace")

    def rev(self, revision: str) -> str | None:
        """The full sha of a commit, or None when the revision names no commit here."""
        result = self.run(
            "rev-parse",
            "--verify",
            "--quiet",
            "--end-of-options",
            f"{revision}^{{commit}}",
            check=False,
        )
        if result.returncode != 0:
            return None
        return result.stdout.decode().strip() or None

    def commit_sha(self, revision: str, what: str) -> str:
        sha = self.rev(revision)
        if sha is None:
            raise GitError(
                f"{what} {revision!r} is not a commit in this clone (a shallow clone may lack "
                "it: fetch it, or in GitLab CI set GIT_DEPTH: 0)"
            )
        return sha


def open_repository(path: str | Path) -> Git:
    """The repository containing `path` (its top level)."""
    directory = Path(path)
    if not directory.is_dir():
        raise GitError(f"{path}: not a directory")
    try:
        top = Git(directory).text("rev-parse", "--show-toplevel").strip()
    except GitError as exc:
        raise GitError(f"{path}: not a git repository ({exc})") from None
    return Git(Path(top))


def default_branch(git: Git, preferred: str | None = None) -> tuple[str, str] | None:
    """The default branch, as (a ref to read it from, its branch name), or None.

    `preferred` is the name CI gives (`CI_DEFAULT_BRANCH`). Otherwise the remote's HEAD (what
    `git clone` records), then the usual names. A remote-tracking branch comes first: it is
    what GitLab has, where a local branch may be stale.
    """
    names: list[str] = []
    if preferred:
        names.append(preferred)
    head = git.run("symbolic-ref", "--quiet", "refs/remotes/origin/HEAD", check=False)
    if head.returncode == 0:
        names.append(head.stdout.decode().strip().removeprefix("refs/remotes/origin/"))
    configured = git.run("config", "--get", "init.defaultBranch", check=False)
    names += [configured.stdout.decode().strip(), "main", "master"]
    for name in dict.fromkeys(n for n in names if n):
        for ref in (f"refs/remotes/origin/{name}", f"refs/heads/{name}"):
            if git.rev(ref) is not None:
                return ref, name
    return None


def fetch_branch(git: Git, name: str) -> str | None:
    """Fetch one branch of `origin` into `refs/remotes/origin/NAME`; the reason on failure.

    GitLab's runner fetches only the ref a job builds (`+refs/heads/<ref>` or the MR's
    refs), even with GIT_DEPTH 0, so the branch the rules come from is often missing:
    https://docs.gitlab.com/ci/runners/configure_runners/#git-strategy . The job's own
    credentials (CI_JOB_TOKEN in origin's URL) may read the project's branches. A shallow
    clone stays shallow: one commit of the branch is what the rules need.
    """
    shallow = git.run("rev-parse", "--is-shallow-repository", check=False)
    depth = ["--depth=1"] if shallow.stdout.decode().strip() == "true" else []
    result = git.run(
        "fetch",
        "--quiet",
        "--no-tags",
        *depth,
        "origin",
        f"+refs/heads/{name}:refs/remotes/origin/{name}",
        check=False,
    )
    if result.returncode == 0:
        return None
    message = result.stderr.decode("utf-8", "replace").strip().splitlines()
    return message[-1] if message else f"git fetch exited {result.returncode}"


def current_branch(git: Git) -> str:
    """The checked-out branch's name; empty when HEAD is detached."""
    result = git.run("symbolic-ref", "--quiet", "--short", "HEAD", check=False)
    return result.stdout.decode().strip() if result.returncode == 0 else ""


def branch_name(git: Git, revision: str) -> str | None:
    """The branch a revision names (`main`, `origin/main`, `refs/heads/main`), if it does."""
    result = git.run("rev-parse", "--symbolic-full-name", "--end-of-options", revision, check=False)
    full = result.stdout.decode().strip()
    if result.returncode != 0:
        return None
    if full.startswith("refs/heads/"):
        return full.removeprefix("refs/heads/")
    if full.startswith("refs/remotes/"):
        remote_and_name = full.removeprefix("refs/remotes/")
        return remote_and_name.split("/", 1)[1] if "/" in remote_and_name else None
    return None


def merge_base(git: Git, a: str, b: str) -> str:
    result = git.run("merge-base", a, b, check=False)
    if result.returncode != 0:
        raise GitError(f"{a[:12]} and {b[:12]} have no common history: pass --base")
    return result.stdout.decode().strip()


def comment_char(git: Git | None) -> str:
    """The character that starts a comment line in a commit message (`core.commentChar`)."""
    if git is not None:
        configured = git.run("config", "--get", "core.commentChar", check=False)
        value = configured.stdout.decode().strip()
        if len(value) == 1:  # "auto" picks a character git does not tell; "#" then
            return value
    return "#"


# `git commit --verbose` puts the diff below this line; git drops it and all that follows.
# https://git-scm.com/docs/git-commit#Documentation/git-commit.txt---cleanupltmodegt
_SCISSORS = re.compile(r"^. -{24} >8 -{24}\n", re.MULTILINE)


def clean_message(text: str, comment_char: str = "#") -> str:
    """The message as git will store it: what `git commit`'s default cleanup leaves.

    The commit-msg hook sees the file before git cleans it up (builtin/commit.c runs the hook,
    then strips): comments, the scissors line and what follows it, trailing whitespace, and
    repeated or surrounding blank lines go, as `git stripspace --strip-comments` does.
    """
    text = text.replace("\r\n", "\n")
    scissors = _SCISSORS.search(text)
    if scissors and text[scissors.start()] == comment_char:
        text = text[: scissors.start()]
    lines = [line.rstrip() for line in text.split("\n") if not line.startswith(comment_char)]
    kept: list[str] = []
    for line in lines:
        if line or (kept and kept[-1]):
            kept.append(line)
    while kept and not kept[-1]:
        kept.pop()
    return "\n".join(kept) + "\n" if kept else ""


def rules_revision_for_new_commit(git: Git, default: tuple[str, str] | None) -> str | None:
    """Where the rules for a commit not made yet come from: the merge-base of HEAD with the
    default branch (as `check` reads them), so that the hook judges as the merge request
    will be judged; the default branch before the first commit; HEAD without a default
    branch. None when there is no commit at all."""
    head = git.rev("HEAD")
    if default is None:
        return head
    return merge_base(git, default[0], head) if head else git.rev(default[0])


_IDENT = re.compile(r"^(?P<name>.*?) <(?P<email>[^>]*)>")


def _ident(git: Git | None, which: str) -> tuple[str, str]:
    if git is None:
        return "", ""
    result = git.run("var", which, check=False)
    match = _IDENT.match(result.stdout.decode("utf-8", "replace"))
    return (match["name"], match["email"]) if match else ("", "")


def _parents(git: Git | None) -> tuple[str, ...]:
    """HEAD, plus MERGE_HEAD's commits while a merge is being concluded."""
    if git is None:
        return ()
    parents = [sha for sha in (git.rev("HEAD"),) if sha]
    merge_head = git.run("rev-parse", "--git-path", "MERGE_HEAD", check=False)
    path = Path(merge_head.stdout.decode().strip())
    if merge_head.returncode == 0 and not path.is_absolute():
        path = git.root / path
    if path.is_file():
        parents += path.read_text(encoding="utf-8", errors="replace").split()
    return tuple(parents)


def pending_commit(git: Git | None, message: str) -> Commit:
    """The commit `git commit` is about to make (in a commit-msg hook): the message, the
    author and committer git will record, and its parents. No sha yet."""
    author_name, author_email = _ident(git, "GIT_AUTHOR_IDENT")
    committer_name, committer_email = _ident(git, "GIT_COMMITTER_IDENT")
    return Commit(
        sha=ZERO_SHA,
        message=message,
        author_name=author_name,
        author_email=author_email,
        parent_ids=_parents(git),
        committer_name=committer_name,
        committer_email=committer_email,
    )


# -- what one check looks at ---------------------------------------------------------------


@dataclass(frozen=True)
class Revisions:
    """The range one check judges, and where its rules come from."""

    scope: Scope
    base: str  # full sha: commits are base..head, changes base...head
    head: str  # full sha
    config_rev: str  # full sha of the tree the config is read from
    branch: str  # the source (or pushed) branch; empty when unknown
    target_branch: str  # the branch the work goes to (the pushed branch for a push)

    @classmethod
    def merge_request(cls, base: str, head: str, branch: str, target_branch: str) -> Revisions:
        """A merge request's range, judged by the rules at its base: the target branch's
        commit it starts from, never its own code (DESIGN.md, invariant 9)."""
        return cls(Scope.MERGE_REQUEST, base, head, base, branch, target_branch)

    @classmethod
    def push(cls, base: str, head: str, config_rev: str, branch: str) -> Revisions:
        """A push to `branch`, which is its own target."""
        return cls(Scope.PUSH, base, head, config_rev, branch, branch)

    @property
    def where(self) -> Where:
        """What the Source is asked about: commits and changes base..head; the tree at the
        head of a push, and at an MR's base, which the MR's changes are laid over as the
        server lays them over its target branch (`engine.judge_inputs`)."""
        tree_at = self.base if self.scope is Scope.MERGE_REQUEST else self.head
        return Where(
            self.base, self.head, tree_at, branch=self.branch, target_branch=self.target_branch
        )


def config_file(git: Git, revision: str, path: str | None = None) -> tuple[str, str] | None:
    """(path, text) of the config in the tree at `revision`: `path`, or the first of
    CONFIG_PATHS found; None when there is none. A `path` that does not exist there is an
    error, not a silent fall back to the defaults."""
    candidates = (path,) if path else CONFIG_PATHS
    sizes = object_sizes(git, revision, candidates)
    for candidate in candidates:
        size = sizes.get(candidate)
        if size is None:
            continue
        if size > MAX_CONFIG_BYTES:
            # parse_yaml would say the same after reading it; this avoids reading it.
            raise ConfigError(candidate, [too_large(candidate)])
        return candidate, blob(git, revision, candidate).decode("utf-8", "replace")
    if path:
        raise GitError(f"the config file {path} is not in the tree at {revision[:8]}")
    return None


def read_config(
    git: Git,
    revision: str,
    path: str | None = None,
    *,
    base: Mapping[str, Any] | None = None,
    policies: Sequence[tuple[str, str]] = (),
) -> Config:
    """The config in the tree at `revision` (see `config_file`), with the instance defaults
    beneath and the group policies (`--policy`) above it and its `extends` (bot/policy.py)."""
    from bot.policy import resolve_texts

    found = config_file(git, revision, path)
    if found is None and not base and not policies:
        return default_config()
    return resolve_texts(found, policies=policies, base=base).config


# -- reading the inputs --------------------------------------------------------------------


def object_sizes(git: Git, revision: str, paths: Iterable[str]) -> dict[str, int]:
    """Byte sizes of the blobs at `revision:path`; paths that are not blobs are left out."""
    wanted = [p for p in dict.fromkeys(paths) if p and "\n" not in p]
    if not wanted:
        return {}
    batch = "".join(f"{revision}:{p}\n" for p in wanted).encode()
    out = git.run(
        "cat-file", "--batch-check=%(objecttype) %(objectsize)", input=batch
    ).stdout.decode()
    sizes: dict[str, int] = {}
    for path, line in zip(wanted, out.splitlines(), strict=True):
        kind, _, size = line.partition(" ")
        if kind == "blob" and size.isdigit():
            sizes[path] = int(size)
    return sizes


def blob(git: Git, revision: str, path: str) -> bytes:
    return git.run("cat-file", "blob", f"{revision}:{path}").stdout


_LOG_FIELDS = ("%H", "%P", "%an", "%ae", "%cn", "%ce", "%B")


def commits(git: Git, base: str, head: str) -> tuple[Commit, ...]:
    """`base..head`, oldest first, with parents, author, committer and the full message."""
    # NUL-separated fields, NUL-terminated records (`-z`): a message may hold any other byte.
    fmt = "%x00".join(_LOG_FIELDS)
    out = git.run(
        "log",
        "-z",
        "--topo-order",
        "--reverse",
        "--no-show-signature",
        f"--max-count={MAX_COMMITS + 1}",
        f"--format={fmt}",
        f"{base}..{head}",
        "--",
    ).stdout
    fields = out.split(b"\0")
    if fields and fields[-1] == b"":
        fields.pop()
    width = len(_LOG_FIELDS)
    if len(fields) % width:
        raise GitError("git log gave output in an unexpected shape")
    found = []
    for i in range(0, len(fields), width):
        sha, parents, an, ae, cn, ce, message = (
            f.decode("utf-8", "replace") for f in fields[i : i + width]
        )
        found.append(
            Commit(
                sha=sha,
                message=message,
                author_name=an,
                author_email=ae,
                parent_ids=tuple(parents.split()),
                committer_name=cn,
                committer_email=ce,
            )
        )
    if len(found) > MAX_COMMITS:
        raise GitError(f"{base[:8]}..{head[:8]} has more than {MAX_COMMITS} commits")
    # `--max-count` with `--reverse` limits before reversing, so the bound is exact.
    return tuple(found)


_DIFF_OPTIONS = (
    "--no-color",
    "--no-ext-diff",
    "--no-textconv",
    "--no-relative",
    "-M",
    "--unified=3",
    "--diff-algorithm=myers",
)


def changes(git: Git, base: str, head: str) -> tuple[ChangedFile, ...]:
    """The files changed from the merge-base of base and head to head, with their hunks."""
    listing = git.run("diff", "--name-status", "-z", *_DIFF_OPTIONS, f"{base}...{head}", "--")
    entries = _name_status(listing.stdout)
    diffs = _file_diffs(git, base, head)
    if len(diffs) != len(entries):
        raise GitError(
            f"git diff listed {len(entries)} files but gave {len(diffs)} diffs; cannot pair them"
        )
    return tuple(
        ChangedFile(
            old_path=old,
            new_path=new,
            new_file=status == "A",
            deleted_file=status == "D",
            renamed_file=status == "R",
            diff=diff,
            diff_complete=complete,
        )
        for (status, old, new), (diff, complete) in zip(entries, diffs, strict=True)
    )


def _name_status(out: bytes) -> list[tuple[str, str, str]]:
    """(status letter, old path, new path) from `git diff --name-status -z`."""
    parts = [p.decode("utf-8", "replace") for p in out.split(b"\0")]
    if parts and parts[-1] == "":
        parts.pop()
    entries = []
    i = 0
    while i < len(parts):
        status = parts[i][:1]
        if status in ("R", "C"):  # R100 old new
            old, new = parts[i + 1], parts[i + 2]
            i += 3
        else:
            old = new = parts[i + 1]
            i += 2
        entries.append(("R" if status == "R" else "A" if status == "C" else status, old, new))
    return entries


_HUNK_START = b"@@"
_FILE_START = b"diff --git "


def _file_diffs(git: Git, base: str, head: str) -> list[tuple[str, bool]]:
    """Each file's hunks (GitLab's `diff` field: from the first `@@` on), in git's order.

    Read as a stream, so a huge file costs at most MAX_FILE_DIFF_BYTES of memory; a file
    past that is returned without its diff and marked incomplete, as GitLab marks it.
    """
    command = [
        "git",
        "-C",
        str(git.root),
        "-c",
        "core.quotePath=false",
        "--no-pager",
        "diff",
        *_DIFF_OPTIONS,
        "--src-prefix=a/",
        "--dst-prefix=b/",
        f"{base}...{head}",
        "--",
    ]
    files: list[tuple[str, bool]] = []
    current: list[bytes] | None = None
    size = 0
    complete = True

    def finish() -> None:
        if current is not None:
            files.append(
                (b"".join(current).decode("utf-8", "replace") if complete else "", complete)
            )

    with subprocess.Popen(  # noqa: S603 (fixed argv, no shell)
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    ) as process:
        assert process.stdout is not None
        in_hunks = False
        for line in process.stdout:
            if line.startswith(_FILE_START):
                finish()
                current, size, complete, in_hunks = [], 0, True, False
                continue
            if current is None:
                continue
            if not in_hunks:
                if not line.startswith(_HUNK_START):
                    continue  # the file's header lines: index, modes, ---/+++ paths
                in_hunks = True
            size += len(line)
            if size > MAX_FILE_DIFF_BYTES:
                complete = False
                current.clear()
            elif complete:
                current.append(line)
        finish()
    if process.returncode != 0:
        raise GitError(f"git diff {base[:8]}...{head[:8]} failed (exit {process.returncode})")
    return files


def tree_paths(git: Git, revision: str) -> frozenset[str]:
    """File paths at the root and under `.gitlab/`, as the server's Repository.paths lists
    them from GitLab's tree API (blobs only: a submodule is a `commit` entry)."""
    root = git.run("ls-tree", "-z", revision).stdout
    nested = git.run("ls-tree", "-r", "-z", revision, "--", f"{GITLAB_DIR}/").stdout
    paths = set()
    for entry in (root + nested).split(b"\0"):
        if not entry:
            continue
        meta, _, path = entry.partition(b"\t")
        if meta.split(b" ")[1:2] == [b"blob"]:
            paths.add(path.decode("utf-8", "replace"))
    return frozenset(paths)


def codeowners(git: Git, revision: str) -> CodeOwnersFile | None:
    """The CODEOWNERS file GitLab would use: the first of its three places that exists."""
    sizes = object_sizes(git, revision, CODEOWNERS_PATHS)
    for candidate in CODEOWNERS_PATHS:
        if candidate in sizes:
            if sizes[candidate] > MAX_CODEOWNERS_BYTES:
                raise GitError(f"{candidate} is larger than {MAX_CODEOWNERS_BYTES} bytes")
            return CodeOwnersFile(
                candidate, blob(git, revision, candidate).decode("utf-8", "replace")
            )
    return None


_SIGNATURE_HEADERS = (b"gpgsig ", b"gpgsig-sha256 ")


def carries_signature(git: Git, shas: Sequence[str]) -> dict[str, bool]:
    """Whether each commit object holds a signature (GPG, SSH or X.509) at all.

    This does not verify anything: GitLab verifies a signature against the keys on the
    author's GitLab profile, which only its API can tell. An unsigned commit, though, can
    never be verified, so that much is known offline.
    """
    if not shas:
        return {}
    out = git.run("cat-file", "--batch", input="".join(f"{s}\n" for s in shas).encode()).stdout
    signed: dict[str, bool] = {}
    position = 0
    for sha in shas:
        newline = out.index(b"\n", position)
        header = out[position:newline].split()
        size = int(header[2])
        body = out[newline + 1 : newline + 1 + size]
        position = newline + 1 + size + 1
        headers = body.split(b"\n\n", 1)[0]
        signed[sha] = any(line.startswith(_SIGNATURE_HEADERS) for line in headers.split(b"\n"))
    return signed


@dataclass(frozen=True)
class GitSource:
    """The Source over a local git checkout (bot/source.py).

    What git cannot tell comes from `gitlab` when a token gives one (a CI job with
    COMPLIANCE_TOKEN): the project's description and topics, and whether GitLab verified
    each signature. Without it the project is unknown (None) and a signature is only seen,
    not verified."""

    git: Git
    gitlab: GitLabSource | None = None

    async def config_file(self, revision: str) -> tuple[str, str] | None:
        return config_file(self.git, revision)

    async def commits(self, base: str, head: str) -> tuple[Commit, ...]:
        return commits(self.git, base, head)

    async def changes(self, base: str, head: str) -> Changes:
        return Changes(changes(self.git, base, head))

    async def tree_paths(self, revision: str) -> frozenset[str]:
        return tree_paths(self.git, revision)

    async def codeowners(self, revision: str) -> CodeOwnersFile | None:
        return codeowners(self.git, revision)

    async def file_sizes(self, revision: str, paths: Sequence[str]) -> dict[str, int]:
        return object_sizes(self.git, revision, paths)

    async def file_texts(self, revision: str, paths: Sequence[str]) -> dict[str, str]:
        return {path: file_text(blob(self.git, revision, path)) for path in paths}

    async def project(self) -> ProjectFacts | None:
        return await self.gitlab.project() if self.gitlab is not None else None

    async def target_branch_protected(self, where: Where) -> bool | None:
        return None  # git knows no protection: only GitLab's settings do

    async def signatures(self, shas: Sequence[str]) -> Signatures:
        if self.gitlab is not None:
            return await self.gitlab.signatures(shas)
        return Signatures(carries_signature(self.git, shas), verified=False)


async def read_inputs(
    git: Git | GitSource, revisions: Revisions, needs: Collection[Need | Fact]
) -> Inputs:
    """What the plan needs, read from git (and GitLab, when the source has it): commits
    base..head, changes base...head, the tree and files at head."""
    source = git if isinstance(git, GitSource) else GitSource(git)
    return await read(source, reads_for(needs, revisions.scope), revisions.where)


# -- judging -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LocalResult:
    report: Report
    not_judged: tuple[NotJudged, ...]
    revisions: Revisions
    known_paths: frozenset[str] = frozenset()  # the files findings may point at


def judge(
    checks: Plan,
    revisions: Revisions,
    inputs: Inputs,
    *,
    merge_request: MergeRequestFacts | None = None,
    project: ProjectFacts | None = None,
    signatures: Mapping[str, bool] | None = None,
    unjudgeable: Mapping[str, str] | None = None,
    partial: Mapping[str, str] | None = None,
) -> LocalResult:
    """Run the plan's rules on what the Source said.

    A rule whose inputs nobody could give is left out of the run and listed as not judged,
    with the reason; a rule judged on part of its input runs and is listed with the caveat.
    `merge_request` is the MR's facts (None: not known). `project` and `signatures`, when
    given, are GitLab's answers and stand for what `inputs` holds.
    """
    if project is not None:
        inputs = replace(inputs, project=project)
    if signatures is not None:
        inputs = replace(inputs, signatures=Signatures(signatures))
    skipped: dict[str, str] = dict(unjudgeable or {})
    caveats: dict[str, str] = dict(partial or {})
    mr_scope = revisions.scope is Scope.MERGE_REQUEST
    signed = inputs.signatures.by_sha
    if not inputs.signatures.verified and signed:
        unknown = [c for c in inputs.commits if signed.get(c.sha)]
        unverifiable = (
            f"{_count(len(unknown), 'signed commit')} of {len(inputs.commits)}: only GitLab "
            "can verify a signature (against the keys on the author's profile), which needs "
            "COMPLIANCE_TOKEN in CI"
        )
        if unknown and len(unknown) == len(inputs.commits):
            skipped.setdefault("commit.signed", unverifiable)
        elif unknown:
            caveats.setdefault("commit.signed", f"{unverifiable}; the unsigned ones were judged")
        # An unsigned commit fails, as it will on GitLab; a signed one is left to GitLab.
    for rule, _ in checks.rules:
        reason = skipped.get(rule.id)
        if reason is None and Need.PROJECT in rule.needs and inputs.project is None:
            reason = _NO_PROJECT
        if reason is None:
            reason = _fact_unknown(rule, inputs)
        if reason is None and mr_scope and merge_request is None and rule.id in MR_RULES:
            if rule.id not in MR_RULES_FROM_GIT:
                reason = _NO_MERGE_REQUEST
            elif rule.id == "merge_request.source_branch" and not revisions.branch:
                reason = _NO_BRANCH
        if reason is not None:
            skipped[rule.id] = reason
    ran = checks.only(lambda rule: rule.id not in skipped)
    titles = {rule.id: rule.title for rule, _ in checks.rules}
    not_judged = tuple(
        NotJudged(rule_id, titles[rule_id], reason)
        for rule_id, reason in skipped.items()
        if rule_id in titles
    ) + tuple(
        NotJudged(rule_id, titles[rule_id], reason, partial=True)
        for rule_id, reason in caveats.items()
        if rule_id in titles and rule_id not in skipped
    )
    if mr_scope and merge_request is None:
        # Only the branch names: the MR rules that read more were left out above.
        merge_request = MergeRequestFacts(
            title="", source_branch=revisions.branch, target_branch=revisions.target_branch
        )
    files = inputs.changes.files
    return LocalResult(
        report=judge_inputs(
            ran, revisions.scope, inputs, revisions.where, merge_request=merge_request
        ),
        not_judged=not_judged,
        revisions=revisions,
        known_paths=inputs.paths | {p for c in files for p in (c.old_path, c.new_path)},
    )


def _fact_unknown(rule: Rule[Any], inputs: Inputs) -> str | None:
    """Why the rule cannot be judged: a `Fact` it needs the Source could not tell."""
    facts = sorted((n for n in rule.needs if isinstance(n, Fact)), key=lambda f: f.name)
    for fact in facts:
        if inputs.facts.get(fact.name) is None:
            return fact.cannot_tell or f"this checkout cannot tell {fact.name}"
    return None


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
