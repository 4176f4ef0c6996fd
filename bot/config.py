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
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal, cast

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from bot.rules.base import RuleConfig, SquashPolicy
from bot.rules.catalog import all_rules

# Where a project keeps its config; the first found wins.
CONFIG_PATHS = (".gitlab/compliance.yml", ".compliance.yml")
# A config file is a few KiB; anything this large is a mistake or an attack.
MAX_CONFIG_BYTES = 256 * 1024


class CommitOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    squash: SquashPolicy = Field(
        default=SquashPolicy.TITLE,
        description="When an MR will be squashed: `title` judges the MR title (GitLab's "
        "default squash commit message) instead of each commit; `commits` judges each commit.",
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
        rules=(rules_model, Field(default_factory=rules_model)),
    )
    return model


@dataclass(frozen=True)
class Config:
    """A validated config: the options of every rule, and where they came from."""

    model: BaseModel
    source: str = "defaults"

    def rule(self, rule_id: str) -> RuleConfig:
        return cast(RuleConfig, getattr(self.model.rules, _field_name(rule_id)))  # type: ignore[attr-defined]

    @property
    def fails_inherited(self) -> bool:
        """Whether findings already on the target branch fail an MR."""
        return bool(self.model.target_branch_findings == "fail")  # type: ignore[attr-defined]

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


class _NoAliasesLoader(yaml.SafeLoader):
    """Safe YAML without anchors and aliases: they enable "billion laughs" blow-ups and a
    config file has no need for them."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise yaml.MarkedYAMLError(
                problem="anchors and aliases are not allowed", problem_mark=event.start_mark
            )
        return super().compose_node(parent, index)


def parse_yaml(text: str, source: str) -> tuple[dict[str, Any], yaml.Node | None]:
    """The document as data and as a node tree (for line numbers)."""
    if len(text.encode("utf-8")) > MAX_CONFIG_BYTES:
        raise ConfigError(
            source, [ConfigProblem(source, 1, 1, f"file is larger than {MAX_CONFIG_BYTES} bytes")]
        )
    try:
        loader = _NoAliasesLoader(text)
        try:
            node = loader.get_single_node()
        finally:
            loader.dispose()
        loader = _NoAliasesLoader(text)
        try:
            data = loader.get_single_data()
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
        for error in exc.errors():
            loc = tuple(error["loc"])
            line, column = _locate(node, loc)
            where = ".".join(str(p) for p in loc)
            message = error["msg"]
            if error["type"] == "extra_forbidden":
                message = f"unknown key {loc[-1]!r}" + (
                    " (not a rule id)" if loc[:1] == ("rules",) and len(loc) == 2 else ""
                )
            problems.append(ConfigProblem(source, line, column, f"{where}: {message}"))
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
