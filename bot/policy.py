"""Group policy and `extends`: which rules a project is judged by, and where each came from.

Precedence, left to right (a later layer overrides an earlier one):

    instance defaults (COMPLIANCE_CONFIG)
    group policies, top group first: each one's `extends` (left to right), then its file
    the project's `extends` (left to right), then the project's own file

Maps merge deeply and lists replace (as commitlint and RuboCop do). A policy file may say
`locked: true` on a rule: from then on the rule cannot be switched off or lowered in severity,
and its other options cannot be changed; a later layer may only raise its severity. An
attempt to weaken it is ignored and reported with where the lock comes from.

Never silently weaker (DESIGN.md, `policy` row and invariant 14): a policy or an `extends`
target that cannot be read, or is invalid, raises `PolicyUnreadable` (a `ConfigError`), so
the check fails; it never falls back to weaker rules.

The resolution (`resolve`) is pure, over texts already fetched; `fetch_for_project` reads
what it needs from GitLab, through a per-client cache (`cache_for`); `resolve_texts` is the
local variant (`check --policy FILE`), where `extends` cannot be followed.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import os
import re
import time
import weakref
from collections import OrderedDict
from collections.abc import Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Generic, Literal, TypeVar

import yaml

from bot.config import (
    MAX_CONFIG_BYTES,
    Config,
    ConfigError,
    ConfigProblem,
    _locate,
    default_config,
    merge,
    parse_yaml,
    read_config_file,
    validate,
)
from bot.gitlab import GitLab, GitLabHTTPError, ResponseTooLarge, encode_path
from bot.source import together

# Where a group keeps its policy: a project of this name in the group, this file on its
# default branch. The name is a setting (COMPLIANCE_POLICY_PROJECT).
DEFAULT_POLICY_PROJECT = "compliance-policy"
POLICY_FILE = ".gitlab/compliance-policy.yml"
POLICY_PROJECT_VARIABLE = "COMPLIANCE_POLICY_PROJECT"
POLICY_TTL_VARIABLE = "POLICY_CACHE_SECONDS"
# `extends` of `extends` of `extends`, no deeper; a file names at most this many targets.
MAX_EXTENDS_DEPTH = 3
MAX_EXTENDS_PER_FILE = 10
MAX_GROUP_DEPTH = 20  # GitLab allows 20 levels of subgroups
# How long a policy read is trusted without a new look (a push hook on the policy project
# clears it at once): bounded, documented in the README.
DEFAULT_TTL_SECONDS = 300.0
MAX_TTL_SECONDS = 3600.0
CACHE_ENTRIES = 1024

_SEVERITY_RANK = {"off": 0, "info": 1, "warning": 2, "error": 3}
# group/sub/project:path/in/repo.yml@ref (the ref optional). Project paths: GitLab's path
# characters (letters, digits, `_`, `-`, `.`), `/` between namespaces.
_EXTENDS = re.compile(
    r"^(?P<project>[A-Za-z0-9_.][A-Za-z0-9_.\-]*(?:/[A-Za-z0-9_.][A-Za-z0-9_.\-]*)+)"
    r":(?P<path>[^@\s]+)(?:@(?P<ref>[^\s]+))?$"
)

Kind = Literal["instance", "policy", "extends", "project"]
K = TypeVar("K")
V = TypeVar("V")


class PolicyProblem(ConfigProblem):
    """A problem with no line to point at (a file that could not be read)."""

    def __str__(self) -> str:
        return self.message


class PolicyUnreadable(ConfigError):
    """A policy or an `extends` target could not be read, or is invalid: the check fails."""

    def __init__(self, what: str, reason: str, problems: Sequence[ConfigProblem] = ()) -> None:
        message = f"could not read {what}: {reason}"
        super().__init__(what, list(problems) or [PolicyProblem(what, 1, 1, message)])
        self.args = (message,)


@dataclass(frozen=True)
class ExtendsRef:
    project: str
    path: str
    ref: str | None = None

    def __str__(self) -> str:
        return f"{self.project}:{self.path}" + (f"@{self.ref}" if self.ref else "")


def parse_extends(value: str) -> ExtendsRef | None:
    match = _EXTENDS.match(value) if len(value) <= 512 else None
    if match is None or ".." in match["path"].split("/") or match["path"].startswith("/"):
        return None
    return ExtendsRef(match["project"], match["path"], match["ref"])


@dataclass(frozen=True)
class SourceFile:
    """One fetched file: what it is, where it came from, its text."""

    kind: Kind
    label: str  # what a reader recognises: `acme/compliance-policy` or `.gitlab/compliance.yml`
    path: str  # the file, in FILE:LINE:COL (`acme/compliance-policy:.gitlab/compliance-policy.yml`)
    text: str
    version: str = ""  # the blob id or commit it was read at, for the footer and the cache key


@dataclass(frozen=True)
class ParsedFile:
    source: SourceFile
    data: dict[str, Any]  # without `extends` and `locked`
    node: yaml.Node | None
    extends: tuple[ExtendsRef, ...]
    locks: tuple[str, ...]  # rule ids this policy locks


@dataclass(frozen=True)
class Layer:
    file: ParsedFile
    # The `extends` targets in order, each with its own targets.
    parents: tuple[Layer, ...] = ()


@dataclass(frozen=True)
class Origin:
    where: str  # `path:line`, or `defaults`
    locked: bool = False

    def __str__(self) -> str:
        return self.where + (" (locked)" if self.locked else "")


@dataclass(frozen=True)
class Ignored:
    rule: str
    option: str
    value: Any
    where: str  # the line that tried
    locked_by: str  # the line that locked it

    def __str__(self) -> str:
        shown = json.dumps(self.value, default=str)
        return (
            f"ignored {self.rule} {self.option}: {shown} at {self.where}: "
            f"locked by {self.locked_by}"
        )


@dataclass(frozen=True)
class Resolution:
    config: Config
    origins: Mapping[tuple[str, ...], Origin]  # leaf option path -> where it was set
    ignored: tuple[Ignored, ...] = ()
    policies: tuple[SourceFile, ...] = ()  # policy and extends files that applied
    locks: Mapping[str, str] = field(default_factory=dict)  # rule id -> where it was locked

    def notes(self) -> tuple[str, ...]:
        """What the MR note's footer says: the policy files that applied, and each weakening
        that was ignored."""
        lines = [
            f"{'Policy' if f.kind == 'policy' else 'Extends'} {f.label}"
            + (f" ({f.path.split(':', 1)[-1]} at {f.version[:8]})" if f.version else "")
            for f in self.policies
        ]
        return tuple(lines + [str(i) for i in self.ignored])


# -- the pure part -------------------------------------------------------------------------


def parse_file(source: SourceFile) -> ParsedFile:
    """Parse and validate one file on its own, so errors point at its own lines. `extends`
    may appear in any file; `locked: true` only in a policy file."""
    data, node = parse_yaml(source.text, source.path)
    problems: list[ConfigProblem] = []

    def problem(loc: tuple[str | int, ...], message: str) -> None:
        line, column = _locate(node, loc)
        problems.append(ConfigProblem(source.path, line, column, message))

    refs: list[ExtendsRef] = []
    raw_extends = data.pop("extends", [])
    if isinstance(raw_extends, str):
        raw_extends = [raw_extends]
    if not isinstance(raw_extends, list):
        problem(("extends",), "extends: a list of `group/project:path@ref`")
        raw_extends = []
    if len(raw_extends) > MAX_EXTENDS_PER_FILE:
        problem(("extends",), f"extends: more than {MAX_EXTENDS_PER_FILE} targets")
    for index, value in enumerate(raw_extends[:MAX_EXTENDS_PER_FILE]):
        ref = parse_extends(value) if isinstance(value, str) else None
        if ref is None:
            problem(("extends", index), "extends: not `group/project:path` or `…@ref`")
        else:
            refs.append(ref)
    locks: list[str] = []
    rules = data.get("rules")
    if isinstance(rules, dict):
        for rule_id, entry in list(rules.items()):
            if not isinstance(entry, dict) or "locked" not in entry:
                continue
            entry = dict(entry)
            locked = entry.pop("locked")
            rules[rule_id] = entry
            if source.kind != "policy":
                problem(("rules", rule_id, "locked"), "locked: only a group policy can lock")
            elif not isinstance(locked, bool):
                problem(("rules", rule_id, "locked"), "locked: true or false")
            elif locked:
                locks.append(str(rule_id))
    if problems:
        raise ConfigError(source.path, problems)
    try:
        validate(data, node, source.path)
    except ConfigError as exc:
        # A layer may enable a rule whose options another layer gives (a policy turns
        # `merge_request.labels` on, a project lists its labels): a rule's check across its
        # own options waits for the merged config. Everything else is wrong in this file.
        own = [p for p in exc.problems if not _is_cross_option(p)]
        if own:
            raise ConfigError(source.path, own) from None
    return ParsedFile(source, data, node, tuple(refs), tuple(locks))


def _is_cross_option(problem: ConfigProblem) -> bool:
    where, _, message = problem.message.partition(": ")
    return message.startswith("Value error") and where.removeprefix("rules.") in _rule_ids()


@functools.cache
def _rule_ids() -> frozenset[str]:
    from bot.rules.catalog import all_rules

    return frozenset(rule.id for rule in all_rules())


def build_layer(
    root: ParsedFile, files: Mapping[ExtendsRef, ParsedFile], chain: tuple[str, ...] = ()
) -> Layer:
    """`root` with its `extends` targets taken from `files`, recursively: at most
    MAX_EXTENDS_DEPTH levels, and no target that extends itself."""
    chain = (*chain, root.source.path)
    parents = []
    for ref in root.extends:
        name = str(ref)
        if len(chain) > MAX_EXTENDS_DEPTH:
            raise PolicyUnreadable(
                f"extends target `{name}`",
                f"more than {MAX_EXTENDS_DEPTH} levels of extends ({' -> '.join(chain)})",
            )
        parsed = files.get(ref)
        if parsed is None:
            raise PolicyUnreadable(f"extends target `{name}`", "it was not fetched")
        if parsed.source.path in chain:
            cycle = " -> ".join((*chain, parsed.source.path))
            raise PolicyUnreadable(f"extends target `{name}`", f"a cycle: {cycle}")
        parents.append(build_layer(parsed, files, chain))
    return Layer(root, tuple(parents))


def _flatten(layer: Layer) -> list[ParsedFile]:
    return [f for parent in layer.parents for f in _flatten(parent)] + [layer.file]


def _severity_rank(value: Any) -> int:
    return _SEVERITY_RANK.get("off" if value is False else str(value), 0)


def _rule_defaults(rule_id: str) -> dict[str, Any]:
    dumped: dict[str, Any] = default_config().rule(rule_id).model_dump(mode="json", by_alias=True)
    return dumped


def _leaves(data: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> Iterable[tuple[str, ...]]:
    for key, value in data.items():
        path = (*prefix, str(key))
        if isinstance(value, Mapping):
            yield from _leaves(value, path)  # an empty mapping sets nothing
        else:
            yield path


def resolve(
    layers: Sequence[Layer],
    *,
    base: Mapping[str, Any] | None = None,
    source: str = "defaults",
) -> Resolution:
    """Merge the layers in order (instance defaults `base` beneath them all), holding each
    locked rule to what its policy said. `source` names the project's file (or `defaults`)."""
    merged: dict[str, Any] = dict(base or {})
    origins: dict[tuple[str, ...], Origin] = {
        path: Origin("instance defaults") for path in _leaves(merged)
    }
    locks: dict[str, tuple[dict[str, Any], str]] = {}  # rule -> (options held, where locked)
    ignored: list[Ignored] = []
    applied: list[SourceFile] = []
    for parsed in (f for layer in layers for f in _flatten(layer)):
        data = parsed.data
        rules = data.get("rules")
        if isinstance(rules, dict) and locks:
            kept_rules = {}
            for rule_id, entry in rules.items():
                if rule_id not in locks or not isinstance(entry, dict):
                    kept_rules[rule_id] = entry
                    continue
                held, locked_by = locks[rule_id]
                kept = {}
                for option, value in entry.items():
                    where = _where(parsed, ("rules", rule_id, option))
                    if option == "severity":
                        if _severity_rank(value) >= _severity_rank(held["severity"]):
                            kept[option] = value
                            continue
                    elif _merged_value(held.get(option), value) == held.get(option):
                        continue  # the same value: not a change
                    ignored.append(Ignored(rule_id, option, value, where, locked_by))
                kept_rules[rule_id] = kept
            data = {**data, "rules": kept_rules}
        merged = merge(merged, data)
        for path in _leaves(data):
            for old in [p for p in origins if p[: len(path)] == path]:
                del origins[old]
            origins[path] = Origin(_where(parsed, path))
        if parsed.source.kind in ("policy", "extends"):
            applied.append(parsed.source)
        for rule_id in parsed.locks:
            held = {**_rule_defaults(rule_id), **merged.get("rules", {}).get(rule_id, {})}
            locks[rule_id] = (held, _where(parsed, ("rules", rule_id)))
        for rule_id, (held, locked_by) in list(locks.items()):
            # What a later layer may still change of a locked rule: only a higher severity.
            current = merged.get("rules", {}).get(rule_id, {})
            locks[rule_id] = (
                {**held, "severity": current.get("severity", held["severity"])},
                locked_by,
            )
    for rule_id in locks:
        for path in [p for p in origins if p[:2] == ("rules", rule_id)]:
            origins[path] = replace(origins[path], locked=True)
    model = validate(merged, None, source)
    config = Config(model, source=source)
    resolution = Resolution(
        config,
        origins,
        tuple(ignored),
        tuple(applied),
        {rule_id: where for rule_id, (_, where) in locks.items()},
    )
    return replace(resolution, config=_with_notes(config, resolution.notes()))


def _with_notes(config: Config, notes: tuple[str, ...]) -> Config:
    return replace(config, notes=notes) if notes else config


def _merged_value(held: Any, value: Any) -> Any:
    if isinstance(held, Mapping) and isinstance(value, Mapping):
        return merge(held, value)
    return value


def _where(parsed: ParsedFile, loc: tuple[str | int, ...]) -> str:
    line, _ = _locate(parsed.node, loc)
    return f"{parsed.source.path}:{line}"


def resolve_texts(
    project: tuple[str, str] | None,
    *,
    policies: Sequence[tuple[str, str]] = (),
    extends: Mapping[str, str] | None = None,
    base: Mapping[str, Any] | None = None,
) -> Resolution:
    """The resolution from texts at hand: `project` (path, text) or None, policy files
    (label, text) top-down, and `extends` targets by their `group/project:path@ref`. A
    target not given cannot be read: the resolution fails, never drops it."""
    given = {parse_extends(k): v for k, v in (extends or {}).items()}
    policy_files = [
        parse_file(SourceFile("policy", label, label, text)) for label, text in policies
    ]
    project_file = (
        parse_file(SourceFile("project", project[0], project[0], project[1])) if project else None
    )
    roots = [*policy_files, *([project_file] if project_file else [])]
    files: dict[ExtendsRef, ParsedFile] = {}
    frontier = [ref for root in roots for ref in root.extends]
    for _ in range(MAX_EXTENDS_DEPTH):
        next_frontier: list[ExtendsRef] = []
        for ref in frontier:
            if ref in files:
                continue
            text = given.get(ref)
            if text is None:
                raise PolicyUnreadable(
                    f"extends target `{ref}`",
                    "it is on GitLab, and this check has no token to read it (in CI, set "
                    "COMPLIANCE_TOKEN; locally, give the policy files with --policy)",
                )
            files[ref] = parse_file(SourceFile("extends", str(ref), str(ref), text))
            next_frontier += files[ref].extends
        frontier = next_frontier
    layers = [build_layer(root, files) for root in roots]
    return resolve(layers, base=base, source=project[0] if project else _default_source(base))


def _default_source(base: Mapping[str, Any] | None) -> str:
    return "instance defaults" if base else "defaults"


def resolution_key(resolution: Resolution) -> str:
    """What the policy part adds to a check's config identity (empty without policy)."""
    if not resolution.policies and not resolution.ignored:
        return ""
    digest = hashlib.sha256(resolution.config.fingerprint().encode())
    digest.update(json.dumps(resolution.config.notes).encode())
    return digest.hexdigest()


def explain(resolution: Resolution) -> str:
    """Every resolved option with where it came from, like `git config --show-origin`."""
    dumped = resolution.config.model.model_dump(mode="json", by_alias=True)
    rows: list[tuple[str, str]] = []
    for path in _leaves(dumped):
        value: Any = dumped
        for part in path:
            value = value[part]
        origin = resolution.origins.get(path)
        if origin is None:
            origin = next((o for p, o in resolution.origins.items() if path[: len(p)] == p), None)
        if origin is None and len(path) >= 2 and path[0] == "rules" and path[1] in resolution.locks:
            origin = Origin("defaults", locked=True)
        rows.append((str(origin or Origin("defaults")), f"{'.'.join(path)}={json.dumps(value)}"))
    width = max((len(w) for w, _ in rows), default=0)
    lines = [f"{where.ljust(width)}  {setting}" for where, setting in rows]
    lines += [str(i) for i in resolution.ignored]
    return "\n".join(lines) + "\n"


# -- reading from GitLab -------------------------------------------------------------------


@dataclass(frozen=True)
class Location:
    project_id: int
    path: str
    default_branch: str


class PolicyCache:
    """What the bot learnt of policy projects, per GitLab client, bounded and least recently
    used. A policy file's text is kept by its blob id (immutable); which blob a branch holds
    is looked up once per target commit (`resolved`), or again after `ttl` seconds; a push
    to a policy project (`forget_project`) drops what was learnt of it at once."""

    def __init__(self, project_name: str | None = None, ttl: float | None = None) -> None:
        self.project_name = project_name or os.environ.get(
            POLICY_PROJECT_VARIABLE, DEFAULT_POLICY_PROJECT
        )
        if ttl is None:
            ttl = float(os.environ.get(POLICY_TTL_VARIABLE) or DEFAULT_TTL_SECONDS)
        self.ttl = min(max(ttl, 0.0), MAX_TTL_SECONDS)
        self.namespaces: _Lru[int, tuple[str, str]] = _Lru()
        self.locations: _Lru[str, Location | None] = _Lru()
        self.texts: _Lru[str, str] = _Lru()
        self.resolved: _Lru[tuple[int, str], tuple[SourceFile, ...]] = _Lru()
        # Look-ups under way: checks (or the audit's projects) of one namespace at once ask
        # GitLab once, not once each.
        self.pending_locations: dict[str, asyncio.Future[Location | None]] = {}

    def forget_project(self, project_id: int) -> None:
        """A push to a project: when it holds a policy or an `extends` target, everything
        resolved with it is read again."""
        if any(loc is not None and loc.project_id == project_id for loc in self.locations.values()):
            self.resolved.clear()
            self.locations.drop(
                [k for k, v in self.locations.items() if v and v.project_id == project_id]
            )


class _Lru(Generic[K, V]):
    def __init__(self, size: int = CACHE_ENTRIES) -> None:
        self._size = size
        self._entries: OrderedDict[K, tuple[V, float]] = OrderedDict()

    def get(self, key: K, ttl: float | None = None) -> tuple[V] | None:
        entry = self._entries.get(key)
        if entry is None or (ttl is not None and time.monotonic() - entry[1] > ttl):
            return None
        self._entries.move_to_end(key)
        return (entry[0],)

    def put(self, key: K, value: V) -> None:
        self._entries[key] = (value, time.monotonic())
        self._entries.move_to_end(key)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def values(self) -> list[V]:
        return [v for v, _ in self._entries.values()]

    def items(self) -> list[tuple[K, V]]:
        return [(k, v) for k, (v, _) in self._entries.items()]

    def drop(self, keys: Iterable[K]) -> None:
        for key in keys:
            self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()


_caches: weakref.WeakKeyDictionary[GitLab, PolicyCache] = weakref.WeakKeyDictionary()


def cache_for(gitlab: GitLab) -> PolicyCache:
    """The policy cache of one GitLab client (one per process in the server)."""
    cache = _caches.get(gitlab)
    if cache is None:
        cache = _caches[gitlab] = PolicyCache()
    return cache


def configure(gitlab: GitLab, *, project_name: str, ttl: float) -> None:
    _caches[gitlab] = PolicyCache(project_name, ttl)


async def _location(gitlab: GitLab, cache: PolicyCache, path: str) -> Location | None:
    """The project at `path`, or None when GitLab shows none (remembered for the TTL: the
    cheap answer for the many namespaces without a policy project)."""
    known = cache.locations.get(path, cache.ttl)
    if known is not None:
        return known[0]
    pending = cache.pending_locations.get(path)
    if pending is None:
        pending = asyncio.ensure_future(_look_up_location(gitlab, cache, path))
        cache.pending_locations[path] = pending
        pending.add_done_callback(lambda _: cache.pending_locations.pop(path, None))
    # Shielded: one waiter cancelled (its check superseded) does not cancel the others'.
    return await asyncio.shield(pending)


async def _look_up_location(gitlab: GitLab, cache: PolicyCache, path: str) -> Location | None:
    try:
        # https://docs.gitlab.com/api/projects/#get-a-single-project (`:id` a full path)
        project = await gitlab.get(f"/projects/{encode_path(path)}")
    except GitLabHTTPError as exc:
        if exc.status != 404:
            raise PolicyUnreadable(f"`{path}`", str(exc)) from None
        cache.locations.put(path, None)
        return None
    branch = project.get("default_branch")
    location = (
        Location(int(project["id"]), str(project.get("path_with_namespace") or path), str(branch))
        if branch
        else Location(int(project["id"]), path, "")
    )
    cache.locations.put(path, location)
    return location


async def _read(
    gitlab: GitLab, cache: PolicyCache, kind: Kind, location: Location, path: str, ref: str
) -> SourceFile:
    """One file of a policy project: its blob id from a HEAD (one cheap call), its text from
    the cache by that id, or read at the commit the HEAD named."""
    label = location.path
    what = f"policy `{label}`" if kind == "policy" else f"extends target `{label}:{path}`"
    if not ref:
        raise PolicyUnreadable(what, "the project has no default branch (an empty repository)")
    file_path = f"/projects/{location.project_id}/repository/files/{encode_path(path)}"
    try:
        # https://docs.gitlab.com/api/repository_files/#get-file-metadata-only
        head = await gitlab.request("HEAD", file_path, params={"ref": ref})
        blob_id = head.headers.get("x-gitlab-blob-id", "")
        commit = head.headers.get("x-gitlab-commit-id", "") or ref
        known = cache.texts.get(blob_id) if blob_id else None
        if known is not None:
            text = known[0]
        else:
            raw = await gitlab.raw_file(
                location.project_id, path, commit, max_bytes=MAX_CONFIG_BYTES
            )
            text = raw.decode("utf-8", "replace")
            if blob_id:
                cache.texts.put(blob_id, text)
    except GitLabHTTPError as exc:
        reason = f"no {path} on {ref}" if exc.status == 404 else str(exc)
        raise PolicyUnreadable(what, reason) from None
    except ResponseTooLarge:
        raise PolicyUnreadable(
            what, f"{path} is larger than {MAX_CONFIG_BYTES // 1024} KiB"
        ) from None
    return SourceFile(kind, label, f"{label}:{path}", text, blob_id or commit)


def _parse_fetched(source: SourceFile, what: str) -> ParsedFile:
    try:
        return parse_file(source)
    except PolicyUnreadable:
        raise
    except ConfigError as exc:
        raise PolicyUnreadable(what, f"invalid {source.path}", exc.problems) from None


async def _namespace(gitlab: GitLab, cache: PolicyCache, project_id: int) -> tuple[str, str]:
    known = cache.namespaces.get(project_id, cache.ttl)
    if known is not None:
        return known[0]
    # https://docs.gitlab.com/api/projects/#get-a-single-project (`namespace`)
    namespace = (await gitlab.project(project_id)).get("namespace") or {}
    found = (str(namespace.get("full_path") or ""), str(namespace.get("kind") or "group"))
    cache.namespaces.put(project_id, found)
    return found


async def fetch_policies(
    gitlab: GitLab,
    project_id: int,
    freshness: str,
    *,
    namespace: tuple[str, str] | None = None,
) -> tuple[SourceFile, ...]:
    """The policy files of the project's ancestor groups, top group first. `freshness` (the
    target commit) keys the cache: the same target commit reuses what was read for it."""
    cache = cache_for(gitlab)
    known = cache.resolved.get((project_id, freshness), cache.ttl)
    if known is not None:
        return known[0]
    full_path, kind = namespace or await _namespace(gitlab, cache, project_id)
    if kind != "group" or not full_path:
        return ()  # a personal namespace has no group policy
    parts = full_path.split("/")[:MAX_GROUP_DEPTH]
    groups = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    locations = await together(
        *(_location(gitlab, cache, f"{g}/{cache.project_name}") for g in groups)
    )
    found = [loc for loc in locations if loc is not None]
    files = await together(
        *(_read(gitlab, cache, "policy", loc, POLICY_FILE, loc.default_branch) for loc in found)
    )
    result = tuple(files)
    cache.resolved.put((project_id, freshness), result)
    return result


async def fetch_extends(
    gitlab: GitLab, roots: Sequence[ParsedFile]
) -> dict[ExtendsRef, ParsedFile]:
    """Every `extends` target the roots name, level by level, to MAX_EXTENDS_DEPTH."""
    cache = cache_for(gitlab)
    files: dict[ExtendsRef, ParsedFile] = {}
    frontier = [ref for root in roots for ref in root.extends]
    for _ in range(MAX_EXTENDS_DEPTH):
        wanted = list(dict.fromkeys(ref for ref in frontier if ref not in files))
        if not wanted:
            break

        async def one(ref: ExtendsRef) -> ParsedFile:
            what = f"extends target `{ref}`"
            location = await _location(gitlab, cache, ref.project)
            if location is None:
                raise PolicyUnreadable(what, "GitLab shows no such project to the bot")
            source = await _read(
                gitlab, cache, "extends", location, ref.path, ref.ref or location.default_branch
            )
            return _parse_fetched(replace(source, label=str(ref), path=str(ref)), what)

        fetched = await together(*(one(ref) for ref in wanted))
        files.update(zip(wanted, fetched, strict=True))
        frontier = [ref for parsed in fetched for ref in parsed.extends]
    return files


async def resolve_for_project(
    gitlab: GitLab,
    project_id: int,
    freshness: str,
    config_file: tuple[str, str] | None,
    base: Mapping[str, Any] | None,
    *,
    namespace: tuple[str, str] | None = None,
) -> Resolution:
    """The rules a project is judged by: its group policies, its file and their `extends`.
    `config_file` is its file (path, text) at the trusted ref, or None."""
    policy_sources = await fetch_policies(gitlab, project_id, freshness, namespace=namespace)
    policies = [_parse_fetched(s, f"policy `{s.label}`") for s in policy_sources]
    project = (
        parse_file(SourceFile("project", config_file[0], config_file[0], config_file[1]))
        if config_file
        else None
    )
    roots = [*policies, *([project] if project else [])]
    files = await fetch_extends(gitlab, roots) if any(r.extends for r in roots) else {}
    layers = [build_layer(root, files) for root in roots]
    source = config_file[0] if config_file else _default_source(base)
    return resolve(layers, base=base, source=source)


async def resolve_for_listed_project(
    gitlab: GitLab,
    project: Mapping[str, Any],
    ref: str,
    config_file: tuple[str, str] | None,
    base: Mapping[str, Any] | None = None,
) -> Config:
    """`resolve_for_project` for a group listing's entry, whose `namespace` saves a call."""
    namespace = project.get("namespace")
    known = None
    if isinstance(namespace, Mapping) and namespace.get("full_path"):
        known = (str(namespace["full_path"]), str(namespace.get("kind") or "group"))
    resolved = await resolve_for_project(
        gitlab, int(project["id"]), ref, config_file, base, namespace=known
    )
    return resolved.config


# -- the `config` commands -------------------------------------------------------------------


def validate_file(text: str, path: str) -> None:
    """`config validate`: a policy file (named `compliance-policy.yml`) may lock; `extends`
    targets are checked for their syntax (following them needs GitLab)."""
    parsed = _parse_local(text, path)
    if not parsed.extends:
        resolve([Layer(parsed)], source=path)  # the rules' checks across their own options


def _parse_local(text: str, path: str) -> ParsedFile:
    kind: Kind = "policy" if path.endswith("compliance-policy.yml") else "project"
    return parse_file(SourceFile(kind, path, path, text))


async def validate_following_extends(text: str, path: str, gitlab: GitLab) -> None:
    """`config validate` with a token: the file, then every `extends` target read from GitLab
    as a check reads it (at most MAX_EXTENDS_DEPTH levels, cycles refused), each problem at
    the target's own file and line, then the merged rules' checks across their options."""
    parsed = _parse_local(text, path)
    files = await fetch_extends(gitlab, [parsed]) if parsed.extends else {}
    resolve([build_layer(parsed, files)], source=path)


def explain_command(
    file: str | None, policies: Sequence[str], project: str | None
) -> int | Coroutine[Any, Any, int]:
    """`config explain`: the resolved config with where each value came from. With
    `--project`, as the server resolves it (GITLAB_URL, GITLAB_TOKEN; the CLI runs the
    returned coroutine on its loop); else FILE (default .gitlab/compliance.yml, when present)
    under the `--policy` files."""
    import sys
    from pathlib import Path

    if project:
        return _explained(_explain_project(project))
    try:
        texts = [(p, read_config_file(p)) for p in policies]
        own = file or (
            ".gitlab/compliance.yml" if Path(".gitlab/compliance.yml").exists() else None
        )
        config_file = (own, read_config_file(own)) if own else None
    except OSError as exc:
        print(f"compliance-bot: cannot read: {exc}", file=sys.stderr)
        return 2
    except ConfigError as exc:
        return _config_error(exc)
    try:
        resolution = resolve_texts(config_file, policies=texts)
    except ConfigError as exc:
        return _config_error(exc)
    print(explain(resolution), end="")
    return 0


def _config_error(exc: ConfigError) -> int:
    import sys

    print(f"compliance-bot: {exc}", file=sys.stderr)
    for problem in exc.problems:
        print(problem, file=sys.stderr)
    return 2


async def _explained(resolving: Coroutine[Any, Any, Resolution]) -> int:
    import sys

    try:
        resolution = await resolving
    except ConfigError as exc:
        return _config_error(exc)
    except Exception as exc:  # GitLab or settings: one line, never a traceback with a token
        print(f"compliance-bot: {exc}", file=sys.stderr)
        return 3
    print(explain(resolution), end="")
    return 0


async def _explain_project(path: str) -> Resolution:
    from bot.config import CONFIG_PATHS
    from bot.gitlab import NotFound, open_gitlab
    from bot.settings import GitLabSettings

    async with open_gitlab(GitLabSettings()) as gitlab:
        project = await gitlab.get(f"/projects/{encode_path(path)}")
        branch = str(project.get("default_branch") or "")
        config_file = None
        for candidate in CONFIG_PATHS if branch else ():
            try:
                raw = await gitlab.raw_file(
                    int(project["id"]), candidate, branch, max_bytes=MAX_CONFIG_BYTES
                )
            except NotFound:
                continue
            config_file = (candidate, raw.decode("utf-8", "replace"))
            break
        return await resolve_for_project(gitlab, int(project["id"]), branch, config_file, None)
