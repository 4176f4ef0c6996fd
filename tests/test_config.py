"""`.gitlab/compliance.yml`: validation with line numbers, merging, and the JSON Schema."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot import config
from bot.config import ConfigError
from tests.git_repos import offline_env

EXAMPLE = Path(__file__).resolve().parents[1] / ".gitlab" / "compliance.yml"


def _problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        config.load(text, "c.yml")
    return [str(p) for p in caught.value.problems]


def test_empty_file_means_the_quiet_defaults() -> None:
    loaded = config.load("", "c.yml")
    assert loaded.rule("commit.conventional").severity == "error"
    assert loaded.rule("commit.dco").severity == "off"
    assert loaded.rule("merge_request.draft").severity == "warning"
    assert loaded.fingerprint() == config.default_config().fingerprint()


def test_options_are_applied() -> None:
    loaded = config.load(
        "rules:\n  commit.dco:\n    severity: error\n"
        "  commit.subject_length:\n    max_length: 50\n",
        "c.yml",
    )
    assert loaded.rule("commit.dco").severity == "error"
    assert loaded.rule("commit.subject_length").max_length == 50  # type: ignore[attr-defined]
    assert loaded.source == "c.yml"


def test_unknown_keys_point_at_their_line_and_column() -> None:
    text = "rules:\n  commit.dco:\n    severity: error\n    sevrity: warning\n"
    assert _problems(text) == ["c.yml:4:5: rules.commit.dco.sevrity: unknown key 'sevrity'"]


def test_unknown_rule_id_is_named() -> None:
    [problem] = _problems("rules:\n  commit.nonsense: {}\n")
    assert problem.startswith("c.yml:2:3:") and "not a rule id" in problem


def test_wrong_type_points_at_the_value_key() -> None:
    [problem] = _problems("version: 1\nrules:\n  commit.subject_length:\n    max_length: many\n")
    assert problem.startswith("c.yml:4:5: rules.commit.subject_length.max_length")


def test_bad_severity() -> None:
    [problem] = _problems("rules:\n  commit.dco:\n    severity: fatal\n")
    assert problem.startswith("c.yml:3:5:") and "'error'" in problem


def test_regex_rejected_by_re2_is_an_error_naming_it() -> None:
    [problem] = _problems(
        "rules:\n  merge_request.title:\n    severity: error\n    pattern: '(?<=x)y'\n"
    )
    assert problem.startswith("c.yml:4:5:") and "(?<=x)y" in problem and "RE2" in problem


def test_yaml_syntax_error_has_a_line() -> None:
    [problem] = _problems("rules:\n  commit.dco: [\n")
    assert problem.startswith("c.yml:3:")


def test_not_a_mapping() -> None:
    assert _problems("- a\n- b\n") == ["c.yml:1:1: the file must be a mapping of options"]


def test_anchors_and_aliases_are_refused() -> None:
    [problem] = _problems("a: &x [1]\nb: *x\n")
    assert "aliases are not allowed" in problem


def test_oversized_file_is_refused() -> None:
    [problem] = _problems("# " + "x" * config.MAX_CONFIG_BYTES)
    assert "larger than" in problem


def test_project_config_is_merged_over_instance_defaults() -> None:
    base = config.load_instance_defaults(
        "rules:\n  commit.dco:\n    severity: error\n  commit.subject_length:\n"
        "    max_length: 60\n",
        "instance.yml",
    )
    loaded = config.load(
        "rules:\n  commit.subject_length:\n    severity: warning\n", "p", base=base
    )
    assert loaded.rule("commit.dco").severity == "error"
    length = loaded.rule("commit.subject_length")
    assert (length.severity, length.max_length) == ("warning", 60)  # type: ignore[attr-defined]


def test_json_schema_names_every_rule_with_descriptions() -> None:
    schema = config.json_schema()
    text = json.dumps(schema)
    for rule_id in ("commit.conventional", "files.secrets", "merge_request.labels"):
        assert f'"{rule_id}"' in text
    assert schema["additionalProperties"] is False


def test_every_rules_severity_is_explained_alike_in_the_schema() -> None:
    # An editor shows this text on hover: the same words for every rule's `severity`.
    from bot.rules.base import SEVERITY_HELP
    from bot.rules.catalog import all_rules

    definitions = config.json_schema()["$defs"]
    for rule in all_rules():
        severity = definitions[rule.config.__name__]["properties"]["severity"]
        assert severity.get("description") == SEVERITY_HELP, rule.id


def test_the_example_config_in_the_repository_validates() -> None:
    loaded = config.load(EXAMPLE.read_text(), str(EXAMPLE))
    assert loaded.rule("commit.conventional").severity == "error"


def test_catastrophic_pattern_runs_in_linear_time() -> None:
    from bot.patterns import search

    started = time.monotonic()
    assert not search("(a+)+$", "a" * 100_000 + "!")
    assert time.monotonic() - started < 1.0


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", "config", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env=offline_env(),
    )


def test_cli_validate_prints_file_line_col_and_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "compliance.yml"
    bad.write_text("rules:\n  commit.dco:\n    severity: loud\n  merge_request.nope: {}\n")
    result = _cli("validate", str(bad))
    assert result.returncode == 2
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith(f"{bad}:3:5: ")
    assert lines[1].startswith(f"{bad}:4:3: ")
    good = tmp_path / "good.yml"
    good.write_text("rules: {}\n")
    assert _cli("validate", str(good)).returncode == 0


def test_cli_schema_is_json() -> None:
    result = _cli("schema")
    assert result.returncode == 0
    assert json.loads(result.stdout)["title"] == "compliance-bot configuration"


# -- hostile files: every one is a config error naming FILE:LINE, never a crash -------------


def _nested(depth: int) -> str:
    """A list nested `depth` deep, where a rule expects a list of strings."""
    return "rules:\n  merge_request.labels:\n    any_of: " + "[" * depth + "]" * depth + "\n"


@pytest.mark.parametrize("depth", [40, 400, 990, 1000, 5000])
def test_deep_nesting_is_an_error_at_its_line(depth: int) -> None:
    problems = _problems(_nested(depth))
    assert problems[0].startswith("c.yml:3:"), problems
    assert "nest" in problems[0]  # ours below libyaml's own limit, libyaml's above


def test_block_nesting_is_an_error_at_its_line() -> None:
    text = "rules:\n" + "".join(" " * (2 * i) + f"k{i}:\n" for i in range(1, 60))
    [problem] = _problems(text)
    assert problem.startswith("c.yml:") and "nested" in problem


@pytest.mark.parametrize(
    "value",
    ["9" * 5000, "0x" + "f" * 5000, "0b" + "1" * 5000, ":".join(["59"] * 5000), "1" + "_0" * 3000],
)
def test_a_huge_integer_is_an_error_at_its_line(value: str) -> None:
    [problem] = _problems(f"rules:\n  commit.subject_length:\n    max_length: {value}\n")
    assert problem.startswith("c.yml:3:17: "), problem
    assert "number" in problem


@pytest.mark.parametrize(
    "value", ["!!int nope", "2001-13-45", "!!float nope", "!!timestamp 2001-02-31"]
)
def test_a_value_yaml_cannot_read_is_an_error_at_its_line(value: str) -> None:
    [problem] = _problems(f"rules:\n  commit.subject_length:\n    max_length: {value}\n")
    assert problem.startswith("c.yml:3:17: "), problem


def test_billion_laughs_is_refused_at_the_first_anchor() -> None:
    text = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8)
    )
    [problem] = _problems(text)
    assert problem.startswith("c.yml:1:4: ") and "aliases are not allowed" in problem


def test_a_list_longer_than_the_cap_is_an_error_at_its_line() -> None:
    items = ",".join(f"l{i}" for i in range(config.MAX_CONFIG_LIST_ITEMS + 1))
    [problem] = _problems(f"rules:\n  merge_request.labels:\n    any_of: [{items}]\n")
    assert problem.startswith("c.yml:3:13: ") and f"{config.MAX_CONFIG_LIST_ITEMS}" in problem


def test_more_values_than_the_cap_is_an_error() -> None:
    per_list = config.MAX_CONFIG_LIST_ITEMS
    lists = config.MAX_CONFIG_VALUES // per_list + 1
    text = "rules:\n" + "".join(f"  r{n}: [{','.join('x' * per_list)}]\n" for n in range(lists))
    [problem] = _problems(text)
    assert "values" in problem and problem.startswith("c.yml:")


def test_oversized_file_says_its_cap_in_kib() -> None:
    [problem] = _problems("# " + "x" * config.MAX_CONFIG_BYTES)
    assert problem == f"c.yml:1:1: larger than {config.MAX_CONFIG_BYTES // 1024} KiB"


def test_parse_results_are_cached_by_content_failures_included() -> None:
    from bot.engine import config_from, config_parse_cache

    text = "rules:\n  commit.nope: {}\n# a failure unique to this test\n"
    before = config_parse_cache.stats()
    for _ in range(3):
        with pytest.raises(ConfigError) as caught:
            config_from((".gitlab/compliance.yml", text), None)
        assert str(caught.value.problems[0]).startswith(".gitlab/compliance.yml:2:3:")
    after = config_parse_cache.stats()
    assert (after.misses - before.misses, after.hits - before.hits) == (1, 2)


def test_cli_validate_refuses_a_hostile_file_with_its_line_and_exit_2(tmp_path: Path) -> None:
    for name, text in (
        ("deep.yml", _nested(1000)),
        ("number.yml", "version: " + "9" * 5000 + "\n"),
    ):
        bad = tmp_path / name
        bad.write_text(text)
        result = _cli("validate", str(bad))
        assert (result.returncode, result.stderr) == (2, ""), result.stderr[-500:]
        assert result.stdout.startswith(f"{bad}:")


def test_cli_reads_a_config_file_no_further_than_its_limit(tmp_path: Path) -> None:
    # Not UTF-8 (a binary pasted by mistake): a config error at its line, not a traceback.
    binary = tmp_path / "binary.yml"
    binary.write_bytes(b"rules: {}\n\xff\xfe\x00\n")
    result = _cli("validate", str(binary))
    assert (result.returncode, result.stderr) == (2, ""), result.stderr[-500:]
    assert result.stdout == f"{binary}:1:1: not UTF-8 text\n"
    # A file without end is refused at the limit, not read into memory.
    endless = "/dev/zero"
    result = _cli("validate", endless)
    assert (result.returncode, result.stderr) == (2, ""), result.stderr[-500:]
    assert result.stdout == f"{endless}:1:1: larger than 64 KiB\n"


def test_bare_off_is_off_and_config_validate_accepts_it(tmp_path: Path) -> None:
    # YAML 1.1 reads an unquoted `off` as false; the author meant the rule off.
    text = (
        "rules:\n  commit.conventional:\n    severity: off\n  repository.topics: {severity: off}\n"
    )
    loaded = config.load(text, ".gitlab/compliance.yml")
    assert loaded.rule("commit.conventional").severity == "off"
    assert loaded.rule("repository.topics").severity == "off"
    with pytest.raises(ConfigError):
        config.load("rules:\n  commit.dco: {severity: on}\n", "x.yml")  # `on` is no severity
    bare = tmp_path / "compliance.yml"
    bare.write_text(text)
    assert _cli("validate", str(bare)).returncode == 0


def test_target_branch_findings_is_report_or_fail() -> None:
    assert not config.default_config().fails_inherited
    assert config.load("target_branch_findings: fail\n", "x.yml").fails_inherited
    with pytest.raises(ConfigError):
        config.load("target_branch_findings: ignore\n", "x.yml")
