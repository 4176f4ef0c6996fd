"""`.gitlab/compliance.yml`: the schema, loading with line numbers, merging, JSON Schema.

    version: 1
    commits:
      squash: title          # judge the MR title when the MR squashes (GitLab's default)
    rules:
      commit.dco:
        severity: error
      merge_request.title:
        severity: error
        pattern: '^[A-Z]+-\\d+ '

Every rule has an entry under `rules`, keyed by its id; what is left out keeps the rule's
quiet default. Unknown keys and wrong types are errors, reported as `FILE:LINE:COL: message`.
The model is built from the rule catalog, so a rule's config class is its schema.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal, NoReturn, cast

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from bot.rules.base import ConfigSection, RuleConfig, SquashPolicy
from bot.rules.catalog import all_rules

# Where a project keeps its config; the first found wins.
CONFIG_PATHS = (".gitlab/compliance.yml", ".compliance.yml")
# A config file is a few KiB. These caps keep the largest file accepted to a few milliseconds
# of parsing and validation, which the server does on its one event loop: past them the
# file is a config error, never a stalled loop.
MAX_CONFIG_BYTES = 64 * 1024
MAX_CONFIG_VALUES = 2000  # scalars, lists and mappings, in all
MAX_CONFIG_LIST_ITEMS = 500  # in one list
MAX_CONFIG_DEPTH = 32  # lists and mappings, one inside another
MAX_CONFIG_NUMBER_CHARS = 100  # an integer's digits (int() of 5,000 digits raises)
# More problems than this are summed up in one line: a file of 5,000 unknown keys must not
# make 5,000 lines (nor 5,000 searches for their lines).
MAX_CONFIG_PROBLEMS = 50


class CommitOptions(ConfigSection):
    squash: SquashPolicy = Field(
        default=SquashPolicy.TITLE,
        description="When an MR will be squashed: `title` judges the MR title (GitLab's "
        "default squash commit message) instead of each commit; `commits` judges each commit.",
    )


class WaiverOptions(ConfigSection):
    """Who may waive findings with `/compliance waive`, and for how long."""

    access_level: int = Field(
        default=40,
        ge=10,
        le=60,
        description="The access level on the MR's target project needed to waive a finding "
        "(https://docs.gitlab.com/api/members/#roles: 30 Developer, 40 Maintainer, "
        "50 Owner); a rule's `waiver_access_level` overrides it.",
    )
    default_days: int = Field(
        default=30, ge=1, le=3650, description="How long a waiver lasts when it says nothing."
    )
    max_days: int = Field(
        default=90, ge=1, le=3650, description="The longest a waiver may last; longer is refused."
    )
    authors_may_waive: bool = Field(
        default=False, description="Whether an MR's author may waive findings on their own MR."
    )


# What an MR's check does with repository findings that already hold on its target branch.
TargetBranchFindings = Literal["report", "fail"]


@dataclass(frozen=True)
class ConfigProblem:
    source: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}:{self.column}: {self.message}"


class ConfigError(Exception):
    """The config file is invalid; `problems` point at lines."""

    def __init__(self, source: str, problems: list[ConfigProblem]) -> None:
        super().__init__(f"invalid {source}")
        self.source = source
        self.problems = problems


def _field_name(rule_id: str) -> str:
    return rule_id.replace(".", "__")


@cache
def config_model() -> type[BaseModel]:
    """The pydantic model of the whole file, one field per rule (aliased by its id)."""
    rule_fields: dict[str, Any] = {
        _field_name(rule.id): (
            rule.config,
            Field(default_factory=rule.config, alias=rule.id, description=rule.title),
        )
        for rule in all_rules()
    }
    rules_model = create_model("Rules", __config__=ConfigDict(extra="forbid"), **rule_fields)
    model: type[BaseModel] = create_model(
        "ComplianceConfig",
        __config__=ConfigDict(extra="forbid", title="compliance-bot configuration"),
        version=(int, Field(default=1, ge=1, le=1, description="Schema version; 1.")),
        commits=(CommitOptions, Field(default_factory=CommitOptions)),
        target_branch_findings=(
            TargetBranchFindings,
            Field(
                default="report",
                description="Repository findings (files, templates, CODEOWNERS, project "
                "settings) that already hold on an MR's target branch: `report` lists them "
                "as already there and they do not fail the MR (only what the MR makes worse "
                "does); `fail` counts them like the MR's own.",
            ),
        ),
        waivers=(WaiverOptions, Field(default_factory=WaiverOptions)),
        rules=(rules_model, Field(default_factory=rules_model)),
    )
    return model


@dataclass(frozen=True)
class Config:
    """A validated config: the options of every rule, and where they came from."""

    model: BaseModel
    source: str = "defaults"
    # What group policy and `extends` add to the note's footer (bot/policy.py): the policy
    # files that applied and each weakening of a locked rule that was ignored.
    notes: tuple[str, ...] = ()

    def rule(self, rule_id: str) -> RuleConfig:
        return cast(RuleConfig, getattr(self.model.rules, _field_name(rule_id)))  # type: ignore[attr-defined]

    @property
    def fails_inherited(self) -> bool:
        """Whether findings already on the target branch fail an MR."""
        return bool(self.model.target_branch_findings == "fail")  # type: ignore[attr-defined]

    @property
    def waivers(self) -> WaiverOptions:
        return cast(WaiverOptions, self.model.waivers)  # type: ignore[attr-defined]

    def waiver_access_level(self, rule_id: str) -> int:
        """The access level needed to waive `rule_id`'s findings."""
        own = self.rule(rule_id).waiver_access_level
        return own if own is not None else self.waivers.access_level

    @property
    def squash_policy(self) -> SquashPolicy:
        return cast(SquashPolicy, self.model.commits.squash)  # type: ignore[attr-defined]

    def fingerprint(self) -> str:
        """Stable text of the effective options (for caching results per config)."""
        return json.dumps(self.model.model_dump(mode="json", by_alias=True), sort_keys=True)


@cache
def default_config() -> Config:
    # Validated once: a check with no config file used to re-run pydantic on every event
    # (about 2% of the server's time in the profile). Configs are frozen and never mutated.
    return Config(config_model()())


def json_schema() -> dict[str, Any]:
    return config_model().model_json_schema(by_alias=True)


# -- loading ------------------------------------------------------------------------------


# libyaml's parser where PyYAML was built with it: about 20 times faster than the pure-Python
# one, which took seconds of the server's loop for a 120 KB file.
_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BaseLoader):  # type: ignore[valid-type,misc]
    """Safe YAML whose values either construct or fail as a YAMLError at their own line."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError, TypeError) as exc:
            # A value the resolver took for an int, float or date that is not one
            # (`2001-13-45`, `!!int nope`).
            raise yaml.constructor.ConstructorError(
                problem=f"cannot read this value: {exc}", problem_mark=node.start_mark
            ) from None

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        # int() refuses 4,300+ decimal digits with a ValueError; hex, binary and base-60
        # ints have no such limit and cost quadratic time. No option needs such a number.
        if len(str(node.value)) > MAX_CONFIG_NUMBER_CHARS:
            raise yaml.constructor.ConstructorError(
                problem=f"number longer than {MAX_CONFIG_NUMBER_CHARS} characters",
                problem_mark=node.start_mark,
            )
        value: int = super().construct_yaml_int(node)
        return value


_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)

_NODE_EVENTS = (yaml.ScalarEvent, yaml.SequenceStartEvent, yaml.MappingStartEvent)
_END_EVENTS = (yaml.SequenceEndEvent, yaml.MappingEndEvent)


def _check_shape(text: str) -> None:
    """Refuse, from the parser's events and before any node or value is built, what would
    make building or validating the document slow, recursive or explosive: too many values,
    too long a list, too deep a nesting, and anchors and aliases (a "billion laughs" file
    expands a few aliases into millions of values; a config file has no need for them).
    The parser stops at the first excess, so its work is bounded by the caps too."""
    values = 0
    # Each enclosing collection: how many items it has so far (a mapping's keys and values
    # both count, so its cap is twice a list's).
    enclosing: list[tuple[list[int], yaml.Event]] = []
    for event in yaml.parse(text, Loader=_BaseLoader):
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            _refuse(event, "anchors and aliases are not allowed")
        if isinstance(event, _END_EVENTS):
            enclosing.pop()
            continue
        if not isinstance(event, _NODE_EVENTS):
            continue
        values += 1
        if values > MAX_CONFIG_VALUES:
            _refuse(event, f"more than {MAX_CONFIG_VALUES} values in the file")
        if enclosing:
            count, start = enclosing[-1]
            count[0] += 1
            if count[0] > count[1]:
                _refuse(start, f"more than {MAX_CONFIG_LIST_ITEMS} items in one list or mapping")
        if isinstance(event, yaml.SequenceStartEvent | yaml.MappingStartEvent):
            if len(enclosing) >= MAX_CONFIG_DEPTH:
                _refuse(event, f"nested more than {MAX_CONFIG_DEPTH} levels deep")
            per_item = 2 if isinstance(event, yaml.MappingStartEvent) else 1
            enclosing.append(([0, per_item * MAX_CONFIG_LIST_ITEMS], event))


def _refuse(event: yaml.Event, problem: str) -> NoReturn:
    # libyaml's events carry its own Mark type, with the same line and column.
    mark = cast(yaml.Mark, event.start_mark)
    raise yaml.MarkedYAMLError(problem=problem, problem_mark=mark)


def parse_yaml(text: str, source: str) -> tuple[dict[str, Any], yaml.Node | None]:
    """The document as data and as a node tree (for line numbers)."""
    if len(text.encode("utf-8")) > MAX_CONFIG_BYTES:
        raise ConfigError(source, [too_large(source)])
    try:
        _check_shape(text)
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        message = " ".join(p for p in (exc.context, exc.problem) if p) or "invalid YAML"
        raise ConfigError(source, [ConfigProblem(source, line, column, message)]) from None
    except yaml.YAMLError as exc:
        raise ConfigError(source, [ConfigProblem(source, 1, 1, str(exc))]) from None
    if data is None:
        return {}, node
    if not isinstance(data, dict):
        raise ConfigError(
            source, [ConfigProblem(source, 1, 1, "the file must be a mapping of options")]
        )
    return data, node


def read_config_file(path: str | os.PathLike[str]) -> str:
    """A config file on disk (`config validate FILE`, `COMPLIANCE_CONFIG`, `--policy`, the
    audit's `--config`), read no further than MAX_CONFIG_BYTES: a larger file, or one without
    end (`/dev/zero`), is refused as `parse_yaml` refuses it, without being read whole. Text
    that is not UTF-8 is a config error too. An OSError is the caller's to word."""
    source = os.fspath(path)
    with open(source, "rb") as handle:
        data = handle.read(MAX_CONFIG_BYTES + 1)
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(source, [too_large(source)])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(source, [ConfigProblem(source, 1, 1, "not UTF-8 text")]) from None


def too_large(source: str) -> ConfigProblem:
    """The problem of a file past MAX_CONFIG_BYTES (found before or after reading it)."""
    return ConfigProblem(source, 1, 1, f"larger than {MAX_CONFIG_BYTES // 1024} KiB")


def _locate(node: yaml.Node | None, loc: tuple[int | str, ...]) -> tuple[int, int]:
    """Line and column of the deepest node on `loc` that exists in the document."""
    if node is None:
        return 1, 1
    mark = node.start_mark
    current: yaml.Node = node
    for part in loc:
        if isinstance(current, yaml.MappingNode):
            for key, value in current.value:
                if key.value == part:
                    mark, current = key.start_mark, value
                    break
            else:
                break
        elif isinstance(current, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(current.value):
                break
            current = current.value[part]
            mark = current.start_mark
        else:
            break
    return mark.line + 1, mark.column + 1


def validate(data: Mapping[str, Any], node: yaml.Node | None, source: str) -> BaseModel:
    try:
        return config_model().model_validate(data)
    except ValidationError as exc:
        problems = []
        errors = exc.errors()
        for error in errors[:MAX_CONFIG_PROBLEMS]:
            loc = tuple(error["loc"])
            line, column = _locate(node, loc)
            where = ".".join(str(p) for p in loc)
            message = error["msg"]
            if error["type"] == "extra_forbidden":
                message = f"unknown key {loc[-1]!r}" + (
                    " (not a rule id)" if loc[:1] == ("rules",) and len(loc) == 2 else ""
                )
            problems.append(ConfigProblem(source, line, column, f"{where}: {message}"))
        if len(errors) > MAX_CONFIG_PROBLEMS:
            more = len(errors) - MAX_CONFIG_PROBLEMS
            problems.append(ConfigProblem(source, 1, 1, f"and {more} more problems"))
        raise ConfigError(source, problems) from None


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """`override` on top of `base`, mapping by mapping; lists and scalars are replaced."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load(text: str, source: str, *, base: Mapping[str, Any] | None = None) -> Config:
    """Parse and validate one file; `base` (the instance defaults) is merged underneath.

    The file is validated on its own first, so errors point at its own lines.
    """
    data, node = parse_yaml(text, source)
    validate(data, node, source)
    merged = merge(base or {}, data)
    return Config(validate(merged, None, source), source=source)


def load_instance_defaults(text: str, source: str) -> dict[str, Any]:
    """The instance-wide defaults file, validated, as raw data to merge under projects."""
    data, node = parse_yaml(text, source)
    validate(data, node, source)
    return data
