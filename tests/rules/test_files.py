from __future__ import annotations

import random
import string
from dataclasses import replace
from typing import Any

import pytest
from pydantic import ValidationError

from bot.model import ChangedFile
from bot.rules import files
from bot.rules.base import Context, Need, Problem, Rule, Scope

ALNUM = string.ascii_letters + string.digits
HEX = "0123456789abcdef"
DIGITS = string.digits


def ctx(*changes: ChangedFile, sizes: dict[str, int] | None = None) -> Context:
    return Context(
        scope=Scope.MERGE_REQUEST,
        branch="feature",
        target_branch="main",
        changes=changes,
        file_sizes=sizes or {},
    )


def added(path: str, *lines: str) -> ChangedFile:
    """A new file whose lines are all added."""
    diff = f"@@ -0,0 +1,{len(lines)} @@\n" + "".join(f"+{line}\n" for line in lines)
    return ChangedFile(path, path, new_file=True, diff=diff)


def modified(path: str, diff: str = "@@ -1 +1 @@\n-old\n+new\n") -> ChangedFile:
    return ChangedFile(path, path, diff=diff)


def fake(n: int, alphabet: str = ALNUM, seed: int = 0) -> str:
    """A reproducible random string: test tokens are built, never written out whole, so this
    file holds no string that a secret scanner would flag."""
    rnd = random.Random(f"{seed}:{n}:{alphabet}")
    return "".join(rnd.choice(alphabet) for _ in range(n))


def texts(problems: list[Problem]) -> str:
    return "\n".join(f"{p.message} | {p.location} | {p.fix}" for p in problems)


# --------------------------------------------------------------------------------------------
# the rule set


def test_rules_are_quiet_by_default_and_need_changes() -> None:
    assert [r.id for r in files.RULES] == [
        "files.prohibited",
        "files.max_size",
        "files.co_change",
        "files.secrets",
    ]
    for rule in files.RULES:
        assert rule.default_config().severity == "off"
        assert Need.CHANGES in rule.needs
        assert rule.scopes == {Scope.MERGE_REQUEST, Scope.PUSH}
    assert Need.FILE_SIZES in files.MAX_SIZE.needs


@pytest.mark.parametrize("rule", files.RULES, ids=lambda r: r.id)
def test_every_option_is_described_in_the_schema(rule: Rule[Any]) -> None:
    schema = rule.config.model_json_schema()
    for name, prop in schema["properties"].items():
        if name != "severity":  # inherited from RuleConfig
            assert prop.get("description"), name
    for name, prop in schema.get("$defs", {}).get("CoChangePair", {}).get("properties", {}).items():
        assert prop.get("description"), name


def test_unknown_options_and_bad_patterns_are_config_errors() -> None:
    with pytest.raises(ValidationError):
        files.ProhibitedFilesConfig.model_validate({"pattern": ["x"]})
    with pytest.raises(ValidationError, match="not valid RE2"):
        files.ProhibitedFilesConfig.model_validate({"extra_patterns": ["(?=lookahead)"]})
    with pytest.raises(ValidationError, match="not valid RE2"):
        files.SecretsConfig.model_validate({"allow": ["("]})
    with pytest.raises(ValidationError):
        files.MaxSizeConfig.model_validate({"max_bytes": 0})
    with pytest.raises(ValidationError):
        files.CoChangeConfig.model_validate({"pairs": [{"when": [], "require": ["CHANGELOG.md"]}]})


# --------------------------------------------------------------------------------------------
# paths and exclude


def test_paths_and_exclude_are_gitignore_style() -> None:
    config = files.SecretsConfig(paths=["src/", "*.cfg"], exclude=["src/vendor/", "*_test.py"])
    assert config.selects("src/app.py")
    assert config.selects("deep/setup.cfg")
    assert not config.selects("docs/index.md")
    assert not config.selects("src/vendor/lib.py")
    assert not config.selects("src/app_test.py")
    anchored = files.SecretsConfig(paths=["/setup.cfg"])
    assert anchored.selects("setup.cfg")
    assert not anchored.selects("pkg/setup.cfg")
    assert files.SecretsConfig().selects("anything/at/all")


# --------------------------------------------------------------------------------------------
# files.prohibited

ON = {"severity": "error"}


def prohibited(*changes: ChangedFile, **options: Any) -> list[Problem]:
    return files.PROHIBITED.run(ctx(*changes), files.ProhibitedFilesConfig(**ON, **options))


@pytest.mark.parametrize(
    "path",
    [
        # the examples of GitLab's push rule documentation, and neighbours
        ".aws/credentials",
        "aws/credentials",
        "homefolder/aws/credentials",
        "ssh/id_rsa",
        ".ssh/personal_rsa",
        "config/server_rsa",
        "id_rsa",
        ".id_rsa",
        "deploy/id_dsa",
        "id_ed25519",
        ".ssh/personal_ecdsa",
        "config/server_ecdsa_sk",
        "keys/id_ed25519_sk",
        "certs/server.pem",
        "secret.key",
        ".bash_history",
        "logs/session.history",
    ],
)
def test_gitlab_secret_files_added_are_caught(path: str) -> None:
    problems = prohibited(ChangedFile(path, path, new_file=True))
    assert [p.location for p in problems] == [path]
    assert "prohibited by the pattern" in problems[0].message


@pytest.mark.parametrize(
    "path", ["id_rsa.pub", "README.md", "keys/server.pem.example", "history.md", "src/key.py"]
)
def test_ordinary_files_pass(path: str) -> None:
    assert prohibited(ChangedFile(path, path, new_file=True)) == []


def test_files_already_in_the_repository_are_not_judged() -> None:
    # Like GitLab's push rule: only files new to the tree.
    assert prohibited(modified("id_rsa"), modified("certs/server.pem")) == []
    assert prohibited(ChangedFile("secret.key", "secret.key", deleted_file=True)) == []


def test_a_file_renamed_to_a_prohibited_path_is_caught() -> None:
    problems = prohibited(ChangedFile("notes.txt", "keys/id_rsa", renamed_file=True))
    assert [p.location for p in problems] == ["keys/id_rsa"]
    # Renaming a prohibited file away is not adding one.
    assert prohibited(ChangedFile("id_rsa", "docs/notes.txt", renamed_file=True)) == []


@pytest.mark.parametrize("path", [".env", "deploy/.env"])
def test_dotenv_is_prohibited_by_default_beyond_gitlabs_list(path: str) -> None:
    env = ChangedFile(path, path, new_file=True)
    assert [p.location for p in prohibited(env)] == [path]
    # GitLab's own list does not have it: the addition is ours (see the README).
    assert prohibited(env, patterns=list(files.GITLAB_SECRET_FILES)) == []
    assert prohibited(modified(".env")) == []
    assert prohibited(ChangedFile(".env.example", ".env.example", new_file=True)) == []


def test_patterns_replace_the_defaults_and_regex_adds_one() -> None:
    pem = ChangedFile("a.pem", "a.pem", new_file=True)
    exe = ChangedFile("tool.exe", "tool.exe", new_file=True)
    assert [p.location for p in prohibited(pem, exe, patterns=[r"\.exe$"])] == ["tool.exe"]
    both = prohibited(pem, exe, regex=r"\.exe$")
    assert [p.location for p in both] == ["a.pem", "tool.exe"]
    assert "`\\.exe$`" in both[1].message


def test_prohibited_honours_paths_and_exclude() -> None:
    fixture = ChangedFile("tests/fixtures/server.pem", "tests/fixtures/server.pem", new_file=True)
    assert prohibited(fixture, exclude=["tests/fixtures/"]) == []
    assert prohibited(fixture, paths=["src/"]) == []
    assert len(prohibited(fixture)) == 1


def test_prohibited_paths_and_exclude_mean_what_git_means() -> None:
    # Issue 16: git never re-includes a file under an excluded directory.
    kept = ChangedFile("fixtures/id_rsa", "fixtures/id_rsa", new_file=True)
    assert prohibited(kept, exclude=["fixtures/", "!fixtures/id_rsa"]) == []
    assert len(prohibited(kept, exclude=["fixtures/*", "!fixtures/id_rsa"])) == 1
    # POSIX classes, escaped trailing spaces, `dir/**/` (directories below dir only)
    numbered = ChangedFile("keys1/id_rsa", "keys1/id_rsa", new_file=True)
    assert len(prohibited(numbered, paths=["keys[[:digit:]]/"])) == 1
    assert prohibited(numbered, paths=["keys[[:alpha:]]/"]) == []
    spaced = ChangedFile("x /a.pem", "x /a.pem", new_file=True)
    assert prohibited(spaced, exclude=["x\\ "]) == []
    assert len(prohibited(spaced, exclude=["x "])) == 1  # the unescaped space is dropped
    top = ChangedFile("dir/a.pem", "dir/a.pem", new_file=True)
    below = ChangedFile("dir/sub/a.pem", "dir/sub/a.pem", new_file=True)
    assert [p.location for p in prohibited(top, below, exclude=["dir/**/"])] == ["dir/a.pem"]


def test_a_path_pattern_that_can_never_match_is_a_config_error() -> None:
    with pytest.raises(ValidationError, match="can never match"):
        files.ProhibitedFilesConfig(**ON, exclude=["fixtures/[abc"])


# --------------------------------------------------------------------------------------------
# files.max_size


def max_size(*changes: ChangedFile, sizes: dict[str, int], **options: Any) -> list[Problem]:
    return files.MAX_SIZE.run(ctx(*changes, sizes=sizes), files.MaxSizeConfig(**ON, **options))


def test_a_file_over_the_limit_is_caught_and_one_at_the_limit_passes() -> None:
    big = ChangedFile("data.bin", "data.bin", new_file=True)
    problems = max_size(big, sizes={"data.bin": 10 * 1024 * 1024 + 1})
    assert [p.location for p in problems] == ["data.bin"]
    assert "over the 10.0 MiB (10,485,760 bytes) limit" in problems[0].message
    assert max_size(big, sizes={"data.bin": 10 * 1024 * 1024}) == []


def test_max_bytes_is_configurable() -> None:
    change = modified("logo.png")
    assert len(max_size(change, sizes={"logo.png": 2048}, max_bytes=1024)) == 1
    assert max_size(change, sizes={"logo.png": 1024}, max_bytes=1024) == []


def test_an_unknown_size_is_a_problem_never_a_pass() -> None:
    problems = max_size(modified("model.onnx"), sizes={})
    assert [p.location for p in problems] == ["model.onnx"]
    assert "size unknown" in problems[0].message
    # A rename with edits has new content too.
    edited = ChangedFile("a.bin", "b.bin", renamed_file=True, diff="@@ -1 +1 @@\n-a\n+b\n")
    assert len(max_size(edited, sizes={})) == 1


def test_deletions_and_pure_renames_have_no_new_size() -> None:
    deleted = ChangedFile("huge.iso", "huge.iso", deleted_file=True)
    renamed = ChangedFile("old/huge.iso", "new/huge.iso", renamed_file=True)
    assert max_size(deleted, renamed, sizes={}) == []


def test_max_size_honours_paths_and_exclude() -> None:
    change = ChangedFile("assets/video.mp4", "assets/video.mp4", new_file=True)
    sizes = {"assets/video.mp4": 50 * 1024 * 1024}
    assert max_size(change, sizes=sizes, exclude=["*.mp4"]) == []
    assert max_size(change, sizes=sizes, paths=["src/"]) == []
    assert len(max_size(change, sizes=sizes)) == 1


# --------------------------------------------------------------------------------------------
# files.co_change

CHANGELOG_PAIR = {"when": ["src/"], "require": ["/CHANGELOG.md"]}


def co_change(*changes: ChangedFile, **options: Any) -> list[Problem]:
    config = files.CoChangeConfig.model_validate({**ON, "pairs": [CHANGELOG_PAIR], **options})
    return files.CO_CHANGE.run(ctx(*changes), config)


def test_code_without_a_changelog_entry_is_caught() -> None:
    problems = co_change(modified("src/app.py"), modified("README.md"))
    assert [p.location for p in problems] == ["src/app.py"]
    assert problems[0].message == "src/app.py changed, but no changed file matches `/CHANGELOG.md`"
    assert problems[0].fix == "Also change a file matching `/CHANGELOG.md`."


def test_code_with_a_changelog_entry_passes() -> None:
    assert co_change(modified("src/app.py"), modified("CHANGELOG.md")) == []
    # The pattern is anchored at the root: a nested CHANGELOG does not count.
    assert len(co_change(modified("src/app.py"), modified("docs/CHANGELOG.md"))) == 1


def test_changes_outside_when_need_nothing() -> None:
    assert co_change(modified("docs/index.md")) == []
    assert co_change() == []


def test_deletions_and_renames_count_as_changes() -> None:
    deleted = ChangedFile("src/old.py", "src/old.py", deleted_file=True)
    assert len(co_change(deleted)) == 1
    moved_out = ChangedFile("src/util.py", "lib/util.py", renamed_file=True)
    assert [p.location for p in co_change(moved_out)] == ["src/util.py"]


def test_a_file_list_gitlab_cut_short_earns_no_co_change_pass() -> None:
    # An unlisted file may be the trigger or the required one: only a listed required file
    # settles the pair.
    config = files.CoChangeConfig.model_validate({**ON, "pairs": [CHANGELOG_PAIR]})
    cut = "GitLab's diff limits stopped the list at 1000 files"
    for listed in ([modified("docs/index.md")], [modified("src/app.py")]):
        problems = files.CO_CHANGE.run(replace(ctx(*listed), changes_truncated=cut), config)
        assert [p.message for p in problems] == [
            f"files GitLab did not list could not be checked for files that change together: {cut}"
        ]
    settled = ctx(modified("src/app.py"), modified("CHANGELOG.md"))
    assert files.CO_CHANGE.run(replace(settled, changes_truncated=cut), config) == []


def test_custom_message_and_many_triggers() -> None:
    changes = [modified(f"src/m{i}.py") for i in range(5)]
    problems = co_change(*changes)
    assert problems[0].message.startswith("src/m0.py, src/m1.py, src/m2.py and 2 more changed")
    pair = {**CHANGELOG_PAIR, "message": "Add a CHANGELOG entry for user-visible changes."}
    problems = co_change(*changes, pairs=[pair])
    assert [p.message for p in problems] == ["Add a CHANGELOG entry for user-visible changes."]


def test_co_change_honours_exclude_and_judges_each_pair() -> None:
    assert co_change(modified("src/app_test.py"), exclude=["*_test.py"]) == []
    pairs = [CHANGELOG_PAIR, {"when": ["api/*.proto"], "require": ["docs/api/"]}]
    problems = co_change(modified("api/v1.proto"), modified("CHANGELOG.md"), pairs=pairs)
    assert [p.location for p in problems] == ["api/v1.proto"]
    assert co_change(modified("api/v1.proto"), modified("docs/api/v1.md"), pairs=pairs) == []


# --------------------------------------------------------------------------------------------
# files.secrets


def secrets(*changes: ChangedFile, **options: Any) -> list[Problem]:
    return files.SECRETS.run(ctx(*changes), files.SecretsConfig(**ON, **options))


GLPAT = "glpat-" + fake(20)


def test_a_gitlab_token_in_an_added_line_is_caught_and_not_echoed() -> None:
    change = added("config/settings.py", "import os", f'TOKEN = "{GLPAT}"')
    problems = secrets(change)
    assert [p.location for p in problems] == ["config/settings.py:2"]
    assert "GitLab personal, project or group access token (glpa…)" in problems[0].message
    assert "[gitlab-pat]" in problems[0].message
    assert GLPAT[:5] not in texts(problems)  # at most the first 4 characters


def test_line_numbers_follow_the_hunks() -> None:
    diff = (
        "@@ -10,3 +10,4 @@ def f():\n"
        " context\n"
        f"-old = '{GLPAT}'\n"  # a removed line is not a new leak
        "+new = 1\n"
        f"+token = '{GLPAT}'\n"
        " context\n"
    )
    problems = secrets(modified("app.py", diff))
    assert [p.location for p in problems] == ["app.py:12"]


def test_an_incomplete_diff_is_a_problem_never_a_pass() -> None:
    change = ChangedFile("dump.sql", "dump.sql", new_file=True, diff_complete=False)
    problems = secrets(change)
    assert [p.location for p in problems] == ["dump.sql"]
    assert "could not be scanned" in problems[0].message
    # A deletion adds nothing, so its missing diff hides nothing.
    gone = ChangedFile("dump.sql", "dump.sql", deleted_file=True, diff_complete=False)
    assert secrets(gone) == []


def test_a_left_out_diff_read_whole_is_scanned_line_by_line() -> None:
    change = ChangedFile("big.py", "big.py", new_file=True, diff_complete=False)
    context = replace(ctx(change), file_texts={"big.py": f"x = 1\ntoken = '{GLPAT}'\n"})
    problems = files.SECRETS.run(context, files.SecretsConfig(**ON))
    assert [p.location for p in problems] == ["big.py:2"]
    clean = replace(ctx(change), file_texts={"big.py": "x = 1\n"})
    assert files.SECRETS.run(clean, files.SecretsConfig(**ON)) == []


@pytest.mark.parametrize(
    ("rule", "config"),
    [
        (files.SECRETS, files.SecretsConfig(**ON)),
        (files.PROHIBITED, files.ProhibitedFilesConfig(**ON)),
        (files.MAX_SIZE, files.MaxSizeConfig(**ON)),
    ],
    ids=lambda v: getattr(v, "id", ""),
)
def test_a_file_list_gitlab_cut_short_is_never_clean(rule: Rule[Any], config: Any) -> None:
    listed = added("a.py", "x = 1")
    truncated = replace(
        ctx(listed, sizes={"a.py": 6}), changes_truncated="GitLab's diff limits stopped it"
    )
    problems = rule.run(truncated, config)
    assert len(problems) == 1
    assert "files GitLab did not list could not be" in problems[0].message
    assert "GitLab's diff limits stopped it" in problems[0].message
    assert rule.run(ctx(listed, sizes={"a.py": 6}), config) == []


def test_allow_suppresses_matching_lines_only() -> None:
    change = added(
        "tests/test_api.py",
        f'FAKE = "{GLPAT}"  # secrets:allow',
        f'REAL = "{GLPAT}"',
    )
    problems = secrets(change, allow=[r"secrets:allow"])
    assert [p.location for p in problems] == ["tests/test_api.py:2"]


def test_paths_and_exclude_choose_the_files_scanned() -> None:
    change = added("tests/fixtures/tokens.txt", GLPAT)
    assert secrets(change, exclude=["tests/fixtures/"]) == []
    assert secrets(change, paths=["src/"]) == []
    assert len(secrets(change)) == 1


def test_placeholders_and_documentation_keys_pass() -> None:
    change = added(
        "docs/setup.md",
        "export GITLAB_TOKEN=glpat-xxxxxxxxxxxxxxxxxxxx",  # entropy too low
        "aws_access_key_id = AKIAIOSFODNN7EXAMPLE",  # AWS's own example key
        "Use the `ghp_` prefix for classic GitHub tokens.",
        "task = disk.ask()  # SK",
    )
    assert secrets(change) == []


def test_private_keys_need_key_material() -> None:
    body = fake(64, ALNUM + "+/")
    key = added("deploy/key.txt", "-----BEGIN OPENSSH PRIVATE KEY-----", body, "-----END OPENSSH")
    problems = secrets(key)
    assert [p.location for p in problems] == ["deploy/key.txt:1"]
    assert "a private key block" in problems[0].message
    assert body[:5] not in texts(problems)
    one_string = added("app.json", f'{{"key": "-----BEGIN RSA PRIVATE KEY-----\\n{body}"}}')
    assert len(secrets(one_string)) == 1
    code = added(
        "pem.py",
        'HEADER = "-----BEGIN PRIVATE KEY-----"',
        "def is_key(text):",
        "    return text.startswith(HEADER)",
    )
    assert secrets(code) == []


def _samples() -> dict[str, str]:
    hex_ = HEX
    b64 = ALNUM + "+/"
    word = ALNUM + "_-"
    return {
        "gitlab-pat": "glpat-" + fake(20),
        "gitlab-deploy-token": "gldt-" + fake(20),
        "gitlab-runner-authentication-token": "glrtr-" + fake(20),
        "gitlab-rrt": "GR1348941" + fake(20),
        "gitlab-cicd-job-token": "glcbt-64_" + fake(20),
        "gitlab-ptt": "glptt-" + fake(40, hex_),
        "gitlab-feed-token": "glft-" + fake(20),
        "gitlab-incoming-mail-token": "glimt-" + fake(25),
        "gitlab-kubernetes-agent-token": "glagent-" + fake(50),
        "gitlab-oauth-app-secret": "gloas-" + fake(64),
        "gitlab-scim-token": "glsoat-" + fake(20),
        "gitlab-feature-flag-client-token": "glffct-" + fake(20),
        "gitlab-workspace-token": "glwt-" + fake(20),
        "gitlab-session-cookie": "_gitlab_session=" + fake(32, hex_ + "ghijklmnop"),
        "github-pat": "ghp_" + fake(36),
        "github-fine-grained-pat": "github_pat_" + fake(82, ALNUM + "_"),
        "github-oauth": "gho_" + fake(36),
        "github-app-token": "ghs_" + fake(36),
        "github-refresh-token": "ghr_" + fake(36),
        "aws-access-token": "AKIA" + fake(16, string.ascii_uppercase + "234567"),
        "gcp-api-key": "AIza" + fake(35, word),
        "digitalocean-pat": "dop_v1_" + fake(64, hex_),
        "hashicorp-tf-api-token": fake(14, HEX + "xyz") + ".atlasv1." + fake(64, HEX + "xyz"),
        "vault-service-token": "hvs." + fake(95, word),
        "databricks-api-token": "dapi" + fake(32, hex_),
        "heroku-api-key-v2": "HRKU-AA" + fake(58, word),
        "slack-bot-token": f"xoxb-{fake(11, DIGITS)}-{fake(12, DIGITS)}{fake(24)}",
        "slack-legacy-bot-token": f"xoxb-{fake(10, DIGITS)}-a{fake(23)}",
        "slack-user-token": "xoxp-"
        + "-".join(fake(11, DIGITS, seed=i) for i in range(3))
        + "-"
        + fake(32),
        "slack-app-token": f"xapp-1-A{fake(10, HEX.upper())}-1234567890-{fake(64, hex_)}",
        "slack-config-access-token": "xoxe.xoxp-1-" + fake(164, string.ascii_uppercase + "0123"),
        "slack-config-refresh-token": "xoxe-1-" + fake(146, string.ascii_uppercase + "0123"),
        "slack-legacy-token": "xoxs-1234-5678-9012-" + fake(40, hex_),
        "slack-legacy-workspace-token": "xoxa-2-" + fake(40),
        "slack-webhook-url": "https://hooks.slack.com/services/"
        + f"T{fake(8)}/B{fake(8, seed=1)}/{fake(24)}",
        "stripe-access-token": "sk_live_" + fake(24),
        "square-access-token": "sq0atp-" + fake(22, word),
        "shopify-access-token": "shpat_" + fake(32, hex_),
        "npm-access-token": "npm_" + fake(36),
        "pypi-upload-token": "pypi-AgEIcHlwaS5vcmc" + fake(60, word),
        "openai-api-key": "sk-proj-" + fake(74, word) + "T3BlbkFJ" + fake(74, word, seed=1),
        "anthropic-api-key": "sk-ant-api03-" + fake(93, word) + "AA",
        "huggingface-access-token": "hf_" + fake(34, string.ascii_letters),
        "sendgrid-api-token": "SG." + fake(22) + "." + fake(43),
        "twilio-api-key": "SK" + fake(32, hex_),
        "postman-api-token": "PMAK-" + fake(24, hex_) + "-" + fake(34, hex_),
        "linear-api-key": "lin_api_" + fake(40),
        "doppler-api-token": "dp.pt." + fake(43),
        "dynatrace-api-token": "dt0c01." + fake(24) + "." + fake(64),
        "pulumi-api-token": "pul-" + fake(40, hex_),
        "grafana-cloud-api-token": "glc_" + fake(40, b64),
        "grafana-service-account-token": "glsa_" + fake(32) + "_" + fake(8, hex_),
        "sentry-user-token": "sntryu_" + fake(64, hex_),
        "1password-service-account-token": "ops_eyJ" + fake(260, b64),
        "age-secret-key": "AGE-SECRET-KEY-1" + fake(58, "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L"),
    }


SAMPLES = _samples()


def test_every_secret_kind_has_a_sample() -> None:
    kinds = {kind.id for kind in files.SECRET_KINDS} - {files.PRIVATE_KEY_ID}
    assert kinds == set(SAMPLES)


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_each_secret_kind_is_found_without_echoing_it(kind: str) -> None:
    secret = SAMPLES[kind]
    problems = secrets(added("settings.env", f"VALUE='{secret}'"))
    assert [p.location for p in problems] == ["settings.env:1"]
    assert f"[{kind}]" in problems[0].message
    shown = texts(problems).replace(f"[{kind}]", "")  # the kind id may look like a prefix
    assert secret[:5] not in shown and secret[-8:] not in shown


def test_findings_per_file_are_capped() -> None:
    lines = [f"t{i} = 'glpat-{fake(20, seed=i)}'" for i in range(15)]
    problems = secrets(added("tokens.py", *lines))
    assert len(problems) == files.MAX_FINDINGS_PER_FILE + 1
    assert problems[-1].location == f"tokens.py:{files.MAX_FINDINGS_PER_FILE + 1}"
    assert "more possible secrets" in problems[-1].message


def test_line_caps_are_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files, "MAX_LINES_PER_FILE", 3)
    monkeypatch.setattr(files, "MAX_LINES_TOTAL", 5)
    first = added("a.txt", "1", "2", "3", "4", GLPAT)
    second = added("b.txt", "1", "2", "3")
    third = added("c.txt", GLPAT)
    problems = secrets(first, second, third)
    assert [p.location for p in problems] == ["a.txt:4", "b.txt:3", "c.txt"]
    assert "only the first 3 of its 5 added lines" in problems[0].message
    assert "only the first 2 of its 3 added lines" in problems[1].message
    assert problems[2].message.startswith("1 file(s) were not scanned for secrets")


def test_a_100000_line_diff_is_scanned_to_the_end() -> None:
    lines = [f"    value_{i} = compute(task, disk, {i})  # ask the client" for i in range(99_999)]
    change = added("generated/big.py", *lines, f"token = '{GLPAT}'")
    problems = secrets(change)
    assert [p.location for p in problems] == ["generated/big.py:100000"]


def test_preview_and_entropy() -> None:
    assert files.preview("glpat-abc") == "glpa…"
    assert files.shannon_entropy("") == 0.0
    assert files.shannon_entropy("aaaa") == 0.0
    assert files.shannon_entropy("abcd") == 2.0


# gitleaks' own false-positive rules (bot/rules/secret_allowlists.py)

FIREBASE_EXAMPLE_KEY = "AIzaSyabcdefghijklmnopqrstuvwxyz1234567"  # gcp-api-key allowlist


def test_gitleaks_global_path_allowlist_skips_lock_files_and_vendored_code() -> None:
    for path in ("package-lock.json", "web/yarn.lock", "node_modules/x/index.js", "go.sum"):
        assert secrets(added(path, f'"token": "{GLPAT}"')) == [], path
    assert len(secrets(added("src/lock.json", f'"token": "{GLPAT}"'))) == 1


def test_gitleaks_rule_allowlists_drop_known_example_values() -> None:
    assert secrets(added("src/firebase.js", f'apiKey: "{FIREBASE_EXAMPLE_KEY}"')) == []
    real = "AIza" + fake(35)
    assert len(secrets(added("src/firebase.js", f'apiKey: "{real}"'))) == 1
    # github-pat's allowlisted path, outside node_modules
    ghp = "ghp_" + fake(36)
    assert secrets(added("docs/@octokit/auth-token/README.md", ghp)) == []
    assert len(secrets(added("docs/README.md", ghp))) == 1


def test_gitleaks_global_stopwords_and_placeholder_regexes() -> None:
    # The secret holds gitleaks' stopword `abcdefghijklmnopqrstuvwxyz`: an example value.
    assert secrets(added("src/pay.py", 'KEY = "sk_live_abcdefghijklmnopqrstuvwxyz0123"')) == []
    assert len(secrets(added("src/pay.py", f'KEY = "sk_live_{fake(30)}"'))) == 1
