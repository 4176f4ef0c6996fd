"""File rules: prohibited paths, file sizes, files that must change together, and secrets.

Each rule judges the files an MR or a push changes (`Context.changes`); none reads the rest of
the repository. Paths are selected with gitignore-style patterns (`paths`, `exclude`), the syntax
of `.gitignore` that GitLab users already know, matched as git matches them (bot.gitignore).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Annotated, Any, TypeVar

import re2
from pydantic import AfterValidator, Field

from bot import gitignore
from bot.model import ChangedFile
from bot.patterns import Regex, compile_regex
from bot.rules import secret_allowlists
from bot.rules.base import ConfigSection, Context, Need, Problem, Rule, RuleConfig

# Bounds on what a config may list, so a config cannot make a check unbounded.
MAX_PATTERNS = 200

# --------------------------------------------------------------------------------------------
# Path selection shared by every file rule


def _valid_path_patterns(patterns: list[str]) -> list[str]:
    """Compile the patterns once at config load, so a bad one is a config error, not a crash."""
    gitignore.validate(patterns)
    return patterns


# A config field holding gitignore-style path patterns, validated when the config loads.
PathPatterns = Annotated[list[str], AfterValidator(_valid_path_patterns)]


def _matches(patterns: Sequence[str], path: str) -> bool:
    return bool(patterns) and gitignore.compile_patterns(tuple(patterns)).match_file(path)


class FileRuleConfig(RuleConfig):
    """Options every file rule has: which changed files it judges."""

    paths: PathPatterns = Field(
        default_factory=list,
        max_length=MAX_PATTERNS,
        description="Only judge files matching these gitignore-style patterns, e.g. `src/`, "
        "`*.py`, `/setup.cfg` (a leading `/` anchors at the repository root). "
        "Empty: every file.",
    )
    exclude: PathPatterns = Field(
        default_factory=list,
        max_length=MAX_PATTERNS,
        description="Never judge files matching these gitignore-style patterns, even when "
        "`paths` selects them.",
    )

    def selects(self, path: str) -> bool:
        if self.paths and not _matches(self.paths, path):
            return False
        return not _matches(self.exclude, path)


F = TypeVar("F", bound=FileRuleConfig)


def _file_rule(
    rule_id: str,
    title: str,
    config: type[F],
    check: Callable[[Context, F], Iterable[Problem]],
    *more_needs: Need,
    fix: str = "",
) -> Rule[F]:
    """A rule that judges the changed files (`context.changes`), and whatever else it needs."""
    return Rule(rule_id, title, config, check, frozenset({Need.CHANGES, *more_needs}), fix=fix)


@lru_cache(maxsize=1024)
def _compiled(pattern: str) -> Any:
    return compile_regex(pattern)


# --------------------------------------------------------------------------------------------
# files.prohibited

# GitLab's "Prevent pushing secret files" push rule (`prevent_secrets`) denylist, verbatim from
# ee/lib/gitlab/checks/files_denylist.yml of gitlab-org/gitlab (read from the mirror
# diffblue/gitlab@3150d109dece8c1fb04e68dc9db6b0da8d62a487; the same list is documented in
# gitlabhq/gitlabhq@017a6c12 doc/user/project/repository/push_rules.md, "Prevent pushing
# secrets to the repository").
# GitLab searches the file's full path with each of them as an RE2 regex, unanchored and
# case-sensitive (#filename_denylisted? and #data_match? in ee/app/models/concerns/
# push_ruleable.rb, pavankalisetti009/gitlab@e014bfda, a mirror of gitlab-org/gitlab), so they
# stay RE2 regexes here: as gitwildmatch patterns, the unanchored ones (`id_rsa$` also matches
# `backup_id_rsa`; `(ssh|config)/personal_rsa` matches anywhere in a path, with any suffix)
# could not be kept exactly.
GITLAB_SECRET_FILES: tuple[str, ...] = (
    # AWS CLI credential blobs
    r"aws\/credentials$",
    # RSA, DSA, ECSDA, ED25519, ECDSA_SK, ED25519_SK SSH keys
    r"(ssh|config)\/(personal|server)_(rsa|dsa|ed25519|ecdsa|ecdsa_sk|ed25519_sk)",
    r"id_rsa$",
    r"id_dsa$",
    r"id_ed25519$",
    r"id_ecdsa$",
    r"id_ecdsa_sk$",
    r"id_ed25519_sk$",
    # privatekey.pem and secret.key
    r"\.(pem|key)$",
    # files ending in .history or _history
    r"[._]history$",
)


# Deliberately added to GitLab's list (documented in the README): `.env` files hold secrets
# more often than any file on GitLab's list, and the issue that defined this rule names them.
DOTENV_FILES = r"(^|/)\.env$"
DEFAULT_PROHIBITED: tuple[str, ...] = (*GITLAB_SECRET_FILES, DOTENV_FILES)


class ProhibitedFilesConfig(FileRuleConfig):
    patterns: list[Regex] = Field(
        default_factory=lambda: list(DEFAULT_PROHIBITED),
        max_length=MAX_PATTERNS,
        description="RE2 regexes searched (unanchored, case-sensitive) in the path of each "
        "added or renamed-to file; a match is a problem. Default: GitLab's `prevent_secrets` "
        "push rule denylist (SSH private keys, `*.pem`, `*.key`, `aws/credentials`, shell "
        "histories) plus `.env` files. Setting this replaces the defaults; use "
        "`extra_patterns` to add to them.",
    )
    extra_patterns: list[Regex] = Field(
        default_factory=list,
        max_length=MAX_PATTERNS,
        description="More RE2 regexes, judged like `patterns`, e.g. `(^|/)\\.env$`.",
    )
    regex: Regex | None = Field(
        default=None,
        description="One more RE2 regex, like GitLab's 'Prohibited filenames' push rule "
        "(`file_name_regex`), e.g. `\\.exe$`.",
    )


def _added_path(change: ChangedFile) -> str | None:
    """The path a change brings into the tree, or None when it brings no new path.

    Like GitLab's push rule, only files new to the tree are judged, so files already in the
    repository are not restricted (`changed_path.new_file?` in #file_name_validation,
    ee/lib/ee/gitlab/checks/diff_check.rb, pavankalisetti009/gitlab@ec8083ad). A rename brings
    a path new to the tree too, so its new path is judged.
    """
    if change.deleted_file or not (change.new_file or change.renamed_file):
        return None
    return change.new_path


def unseen_files(context: Context, what: str) -> Iterator[Problem]:
    """One problem when GitLab's diff limits cut the list of changed files short: the
    files it left out could not be judged, and what cannot be seen is not clean."""
    if context.changes_truncated:
        yield Problem(
            message=f"files GitLab did not list could not be {what}: {context.changes_truncated}",
            fix="Split the change into smaller merge requests (or pushes) that fit GitLab's "
            "diff limits, or check the rest by hand.",
        )


def check_prohibited(context: Context, config: ProhibitedFilesConfig) -> Iterator[Problem]:
    yield from unseen_files(context, "checked for prohibited files")
    patterns = [*config.patterns, *config.extra_patterns]
    if config.regex:
        patterns.append(config.regex)
    compiled = [(pattern, _compiled(pattern)) for pattern in patterns]
    for change in context.changes:
        path = _added_path(change)
        if path is None or not config.selects(path):
            continue
        hit = next((pattern for pattern, regex in compiled if regex.search(path)), None)
        if hit is not None:
            yield Problem(
                message=f"{path} is prohibited by the pattern `{hit}`",
                location=path,
            )


PROHIBITED = _file_rule(
    "files.prohibited",
    "No prohibited files added",
    ProhibitedFilesConfig,
    check_prohibited,
    fix="Remove the file from the commits (rewrite them: a deleted file stays in history), "
    "add it to .gitignore, and rotate any credential it held.",
)


# --------------------------------------------------------------------------------------------
# files.max_size

MIB = 1024 * 1024


class MaxSizeConfig(FileRuleConfig):
    max_bytes: int = Field(
        default=10 * MIB,
        ge=1,
        description="Largest allowed size, in bytes, of each added or modified file. "
        "Default 10485760 (10 MiB). GitLab's 'Maximum file size' push rule counts in MiB: "
        "multiply by 1048576.",
    )


def _size(n: int) -> str:
    if n >= MIB:
        return f"{n / MIB:.1f} MiB ({n:,} bytes)"
    if n >= 1024:
        return f"{n / 1024:.1f} KiB ({n:,} bytes)"
    return f"{n:,} bytes"


def _pure_rename(change: ChangedFile) -> bool:
    # A rename without edits adds no new content, so it has no new size to judge.
    return change.renamed_file and change.diff_complete and not change.diff


def check_max_size(context: Context, config: MaxSizeConfig) -> Iterator[Problem]:
    # `file_sizes` holds git blob sizes, so a Git LFS file is judged by its small pointer and
    # passes, as GitLab's push rule exempts LFS files.
    yield from unseen_files(context, "checked against the size limit")
    for change in context.changes:
        if change.deleted_file:
            continue
        path = change.new_path
        if not config.selects(path):
            continue
        size = context.file_sizes.get(path)
        if size is None:
            if _pure_rename(change):
                continue
            # Never a pass: a size we could not read may be over the limit.
            yield Problem(
                message=f"{path}: size unknown, so it could not be checked against the "
                f"{_size(config.max_bytes)} limit",
                location=path,
                fix="Re-run the check; if it persists, the file could not be read from GitLab.",
            )
        elif size > config.max_bytes:
            yield Problem(
                message=f"{path} is {_size(size)}, over the {_size(config.max_bytes)} limit",
                location=path,
            )


MAX_SIZE = _file_rule(
    "files.max_size",
    "Files within the size limit",
    MaxSizeConfig,
    check_max_size,
    Need.FILE_SIZES,
    fix="Track the file with Git LFS (GitLab's push rule exempts LFS files too) or keep it out "
    "of the repository; rewrite the commits, since a removed file stays in history.",
)


# --------------------------------------------------------------------------------------------
# files.co_change


class CoChangePair(ConfigSection):
    when: PathPatterns = Field(
        min_length=1,
        max_length=MAX_PATTERNS,
        description="Gitignore-style patterns: when a changed file matches one of them...",
    )
    require: PathPatterns = Field(
        min_length=1,
        max_length=MAX_PATTERNS,
        description="...a changed file must match one of these, e.g. `/CHANGELOG.md`.",
    )
    message: str | None = Field(
        default=None,
        max_length=500,
        description="What the finding says when the pair is not met. Default: names both sides.",
    )


class CoChangeConfig(FileRuleConfig):
    pairs: list[CoChangePair] = Field(
        default_factory=list,
        max_length=MAX_PATTERNS,
        description="Files that must change together: for each pair, when a changed file "
        "matches `when`, some changed file must match `require`. A file counts as changed "
        "when it is added, modified, deleted or renamed (both its old and new path). "
        "`paths` and `exclude` drop files from both sides.",
    )


def changed_paths(changes: Sequence[ChangedFile]) -> list[str]:
    """Every path a change touches, in order, once each.

    Deletions count as changes: removing code is as much a change as editing it, and a
    deleted path is the only one a deletion has. A rename changes both its paths.
    """
    paths: dict[str, None] = {}
    for change in changes:
        if change.deleted_file or change.renamed_file:
            paths[change.old_path] = None
        if not change.deleted_file:
            paths[change.new_path] = None
    return list(paths)


def check_co_change(context: Context, config: CoChangeConfig) -> Iterator[Problem]:
    if not config.pairs:
        return
    paths = [p for p in changed_paths(context.changes) if config.selects(p)]
    unsettled = False
    for pair in config.pairs:
        if any(_matches(pair.require, p) for p in paths):
            continue
        if context.changes_truncated:
            # A file GitLab did not list may be a trigger, or the required one: only a
            # listed required file settles the pair.
            unsettled = True
            continue
        triggers = [p for p in paths if _matches(pair.when, p)]
        if not triggers:
            continue
        shown = ", ".join(triggers[:3]) + (
            f" and {len(triggers) - 3} more" if len(triggers) > 3 else ""
        )
        required = ", ".join(f"`{p}`" for p in pair.require)
        yield Problem(
            message=pair.message or f"{shown} changed, but no changed file matches {required}",
            location=triggers[0],
            fix=f"Also change a file matching {required}.",
        )
    if unsettled:
        yield from unseen_files(context, "checked for files that change together")


CO_CHANGE = _file_rule(
    "files.co_change", "Files that change together", CoChangeConfig, check_co_change
)


# --------------------------------------------------------------------------------------------
# files.secrets
#
# Decision: RE2 patterns taken from gitleaks' default config, not detect-secrets. detect-secrets
# 1.5.0 (its latest release, May 2024) lacks formats asked for here (GitHub fine-grained PATs,
# Google API keys, GitLab `glrtr-`, `glffct-`, `glwt-` and session cookies), keeps its settings
# in a process-wide singleton, brings `requests` for its optional online verification, matches
# with CPython's backtracking `re`, and its 24 regex plugins took 1.0 s for 10,000 lines of
# code where this scan takes 0.02 s (its entropy plugins flag every random-looking string).


@dataclass(frozen=True)
class SecretKind:
    """One well-known secret format.

    `keywords` are literals, one of which every match contains (gitleaks' `keywords`): a line
    holding none of them is not searched further. A keyword is matched in any case, as gitleaks
    does, unless it has an upper-case letter: then its kind's regex is case-sensitive there, and
    so is the keyword (`SK` for Twilio would otherwise stop at every "task" and "disk").

    `entropy` and `allow` work as gitleaks' `entropy` and rule allowlist: a match whose secret
    (its first non-empty capture group, else the whole match) has Shannon entropy at or below
    `entropy`, or matches `allow`, is a placeholder, not a secret. gitleaks' own allowlists
    (global, and per rule) come with the kinds from bot.rules.secret_allowlists.
    """

    id: str
    name: str
    regex: str
    keywords: tuple[str, ...]
    entropy: float = 0.0
    allow: str | None = None


# From gitleaks' default config, config/gitleaks.toml at
# gitleaks/gitleaks@b58d3f102cf3a2c84cb7f923d05c25c9b1aed84b (MIT): ids, regexes, keywords and
# entropy thresholds as there, except where a comment says otherwise. Only formats with a
# distinctive prefix are taken: gitleaks' keyword-and-context rules (`password = ...`) find too
# many things that are not secrets to block a merge on, and JWTs fill test fixtures.
_END = r"""(?:[\x60'"\s;]|\\[nr]|$)"""  # gitleaks' end of a token, kept as is
PRIVATE_KEY_ID = "private-key"
SECRET_KINDS: tuple[SecretKind, ...] = (
    # GitLab. Prefixes: gitlabhq/gitlabhq@017a6c12 doc/security/tokens/_index.md "Token
    # prefixes". `glrtr-` (a runner token created with a registration token) and `glwt-`
    # (workspace token) are listed there but have no gitleaks rule: given the shape of `glrt-`.
    # Routable tokens (`glpat-<27+>.<2><7>`, `glrt-t1_...`) match by their first 20 characters.
    SecretKind(
        "gitlab-pat",
        "GitLab personal, project or group access token",
        r"glpat-[\w-]{20}",
        ("glpat-",),
        3,
    ),
    SecretKind(
        "gitlab-deploy-token", "GitLab deploy token", r"gldt-[0-9a-zA-Z_\-]{20}", ("gldt-",), 3
    ),
    SecretKind(
        "gitlab-runner-authentication-token",
        "GitLab runner authentication token",
        r"glrtr?-[0-9a-zA-Z_\-]{20}",  # gitleaks: `glrt-` only
        ("glrt",),
        3,
    ),
    SecretKind(
        "gitlab-rrt",
        "GitLab runner registration token",
        r"GR1348941[\w-]{20}",
        ("GR1348941",),
        3,
    ),
    SecretKind(
        "gitlab-cicd-job-token",
        "GitLab CI/CD job token",
        r"glcbt-[0-9a-zA-Z]{1,5}_[0-9a-zA-Z_-]{20}",
        ("glcbt-",),
        3,
    ),
    SecretKind(
        "gitlab-ptt", "GitLab pipeline trigger token", r"glptt-[0-9a-f]{40}", ("glptt-",), 3
    ),
    SecretKind("gitlab-feed-token", "GitLab feed token", r"glft-[0-9a-zA-Z_\-]{20}", ("glft-",), 3),
    SecretKind(
        "gitlab-incoming-mail-token",
        "GitLab incoming mail token",
        r"glimt-[0-9a-zA-Z_\-]{25}",
        ("glimt-",),
        3,
    ),
    SecretKind(
        "gitlab-kubernetes-agent-token",
        "GitLab agent for Kubernetes token",
        r"glagent-[0-9a-zA-Z_\-]{50}",
        ("glagent-",),
        3,
    ),
    SecretKind(
        "gitlab-oauth-app-secret",
        "GitLab OAuth application secret",
        r"gloas-[0-9a-zA-Z_\-]{64}",
        ("gloas-",),
        3,
    ),
    SecretKind(
        "gitlab-scim-token", "GitLab SCIM token", r"glsoat-[0-9a-zA-Z_\-]{20}", ("glsoat-",), 3
    ),
    SecretKind(
        "gitlab-feature-flag-client-token",
        "GitLab feature flags client token",
        r"glffct-[0-9a-zA-Z_\-]{20}",
        ("glffct-",),
        3,
    ),
    SecretKind(
        "gitlab-workspace-token",  # not in gitleaks
        "GitLab workspace token",
        r"glwt-[0-9a-zA-Z_\-]{20}",
        ("glwt-",),
        3,
    ),
    SecretKind(
        "gitlab-session-cookie",
        "GitLab session cookie",
        r"_gitlab_session=[0-9a-z]{32}",
        ("_gitlab_session=",),
        3,
    ),
    # GitHub
    SecretKind("github-pat", "GitHub personal access token", r"ghp_[0-9a-zA-Z]{36}", ("ghp_",), 3),
    SecretKind(
        "github-fine-grained-pat",
        "GitHub fine-grained access token",
        r"github_pat_\w{82}",
        ("github_pat_",),
        3,
    ),
    SecretKind("github-oauth", "GitHub OAuth token", r"gho_[0-9a-zA-Z]{36}", ("gho_",), 3),
    SecretKind(
        "github-app-token", "GitHub app token", r"(?:ghu|ghs)_[0-9a-zA-Z]{36}", ("ghu_", "ghs_"), 3
    ),
    SecretKind(
        "github-refresh-token", "GitHub refresh token", r"ghr_[0-9a-zA-Z]{36}", ("ghr_",), 3
    ),
    # Cloud providers
    SecretKind(
        "aws-access-token",
        "AWS access key ID",
        r"\b((?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16})\b",
        ("A3T", "AKIA", "ASIA", "ABIA", "ACCA"),
        3,
    ),
    SecretKind("gcp-api-key", "Google API key", r"\b(AIza[\w-]{35})" + _END, ("AIza",), 4),
    SecretKind(
        "digitalocean-pat",  # gitleaks' three DigitalOcean rules (doo_, dop_, dor_) in one
        "DigitalOcean token",
        r"\b(do[op]_v1_[a-f0-9]{64}|(?i:dor_v1_[a-f0-9]{64}))" + _END,
        ("doo_v1_", "dop_v1_", "dor_v1_"),
        3,
    ),
    SecretKind(
        "hashicorp-tf-api-token",
        "Terraform Cloud API token",
        r"(?i)[a-z0-9]{14}\.(?-i:atlasv1)\.[a-z0-9\-_=]{60,70}",
        ("atlasv1",),
        3.5,
    ),
    SecretKind(
        "vault-service-token",  # gitleaks' `hvs.` and `hvb.` forms; its legacy `s.` matches prose
        "HashiCorp Vault token",
        r"\b(hvs\.[\w-]{90,120}|hvb\.[\w-]{138,300})" + _END,
        ("hvs.", "hvb."),
        3.5,
    ),
    SecretKind(
        "databricks-api-token",
        "Databricks token",
        r"\b(dapi[a-f0-9]{32}(?:-\d)?)" + _END,
        ("dapi",),
        3,
    ),
    SecretKind(
        "heroku-api-key-v2",
        "Heroku API key",
        r"\b(HRKU-AA[0-9a-zA-Z_-]{58})" + _END,
        ("HRKU-AA",),
        4,
    ),
    # Slack
    SecretKind(
        "slack-bot-token",
        "Slack bot token",
        r"xoxb-[0-9]{10,13}-[0-9]{10,13}[a-zA-Z0-9-]*",
        ("xoxb",),
        3,
    ),
    SecretKind(
        "slack-legacy-bot-token",
        "Slack bot token",
        r"xoxb-[0-9]{8,14}-[a-zA-Z0-9]{18,26}",
        ("xoxb",),
        2,
    ),
    SecretKind(
        "slack-user-token",
        "Slack user token",
        r"xox[pe](?:-[0-9]{10,13}){3}-[a-zA-Z0-9-]{28,34}",
        ("xoxp-", "xoxe-"),
        2,
    ),
    SecretKind(
        "slack-app-token",
        "Slack app token",
        r"(?i)xapp-\d-[A-Z0-9]+-\d+-[a-z0-9]+",
        ("xapp",),
        2,
    ),
    SecretKind(
        "slack-config-access-token",
        "Slack configuration token",
        r"(?i)xoxe.xox[bp]-\d-[A-Z0-9]{163,166}",
        ("xoxe",),  # gitleaks: `xoxe.xoxb-` and `xoxe.xoxp-`, though its regex's `.` is any
        2,
    ),
    SecretKind(
        "slack-config-refresh-token",
        "Slack configuration refresh token",
        r"(?i)xoxe-\d-[A-Z0-9]{146}",
        ("xoxe-",),
        2,
    ),
    SecretKind(
        "slack-legacy-token",
        "Slack token",
        r"xox[os]-\d+-\d+-\d+-[a-fA-F\d]+",
        ("xoxo", "xoxs"),
        2,
    ),
    SecretKind(
        "slack-legacy-workspace-token",
        "Slack token",
        r"xox[ar]-(?:\d-)?[0-9a-zA-Z]{8,48}",
        ("xoxa", "xoxr"),
        2,
    ),
    SecretKind(
        "slack-webhook-url",
        "Slack webhook URL",
        # gitleaks leaves the dots of hooks.slack.com unescaped
        r"(?:https?://)?hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9+/]{43,56}",
        ("hooks.slack.com",),
    ),
    # Payments and commerce
    SecretKind(
        "stripe-access-token",
        "Stripe secret key",
        r"\b((?:sk|rk)_(?:test|live|prod)_[a-zA-Z0-9]{10,99})" + _END,
        ("sk_test", "sk_live", "sk_prod", "rk_test", "rk_live", "rk_prod"),
        2,
    ),
    SecretKind(
        "square-access-token",
        "Square access token",
        r"\b((?:EAAA|sq0atp-)[\w-]{22,60})" + _END,
        ("sq0atp-", "EAAA"),
        2,
    ),
    SecretKind(
        "shopify-access-token",  # gitleaks' four Shopify rules in one
        "Shopify token",
        r"shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}",
        ("shpat_", "shpca_", "shppa_", "shpss_"),
        2,
    ),
    # Package registries
    SecretKind(
        "npm-access-token",
        "npm access token",
        r"(?i)\b(npm_[a-z0-9]{36})" + _END,
        ("npm_",),
        2,
    ),
    SecretKind(
        "pypi-upload-token",
        "PyPI upload token",
        r"pypi-AgEIcHlwaS5vcmc[\w-]{50,1000}",
        ("pypi-ageichlwas5vcmc",),
        3,
    ),
    # AI and developer services
    SecretKind(
        "openai-api-key",
        "OpenAI API key",
        r"\b(sk-(?:proj|svcacct|admin)-(?:[A-Za-z0-9_-]{74}|[A-Za-z0-9_-]{58})T3BlbkFJ"
        r"(?:[A-Za-z0-9_-]{74}|[A-Za-z0-9_-]{58})\b|sk-[a-zA-Z0-9]{20}T3BlbkFJ[a-zA-Z0-9]{20})"
        + _END,
        ("t3blbkfj",),
        3,
    ),
    SecretKind(
        "anthropic-api-key",  # gitleaks' api03 and admin01 rules in one
        "Anthropic API key",
        r"\b(sk-ant-(?:api03|admin01)-[a-zA-Z0-9_\-]{93}AA)" + _END,
        ("sk-ant-api03", "sk-ant-admin01"),
    ),
    SecretKind(
        "huggingface-access-token",  # gitleaks' access and organization token rules in one
        "Hugging Face token",
        r"\b((?:hf_|api_org_)(?i:[a-z]{34}))" + _END,
        ("hf_", "api_org_"),
        2,
    ),
    SecretKind(
        "sendgrid-api-token",
        "SendGrid API key",
        r"\b(SG\.(?i)[a-z0-9=_\-\.]{66})" + _END,
        ("SG.",),
        2,
    ),
    SecretKind(
        "twilio-api-key",
        "Twilio API key",
        r"\bSK[0-9a-fA-F]{32}\b",  # gitleaks has no \b: any hex run holding "SK" matched
        ("SK",),
        3,
    ),
    SecretKind(
        "postman-api-token",
        "Postman API key",
        r"\b(PMAK-(?i)[a-f0-9]{24}\-[a-f0-9]{34})" + _END,
        ("PMAK-",),
        3,
    ),
    SecretKind("linear-api-key", "Linear API key", r"lin_api_(?i)[a-z0-9]{40}", ("lin_api_",), 2),
    SecretKind("doppler-api-token", "Doppler token", r"dp\.pt\.(?i)[a-z0-9]{43}", ("dp.pt.",), 2),
    SecretKind(
        "dynatrace-api-token",
        "Dynatrace token",
        r"dt0c01\.(?i)[a-z0-9]{24}\.[a-z0-9]{64}",
        ("dt0c01.",),
        4,
    ),
    SecretKind("pulumi-api-token", "Pulumi token", r"\b(pul-[a-f0-9]{40})" + _END, ("pul-",), 2),
    SecretKind(
        "grafana-cloud-api-token",
        "Grafana Cloud token",
        r"(?i)\b(glc_[A-Za-z0-9+/]{32,400}={0,3})" + _END,
        ("glc_",),
        3,
    ),
    SecretKind(
        "grafana-service-account-token",
        "Grafana service account token",
        r"(?i)\b(glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8})" + _END,
        ("glsa_",),
        3,
    ),
    SecretKind(
        "sentry-user-token",
        "Sentry token",
        r"\b(sntryu_[a-f0-9]{64})" + _END,
        ("sntryu_",),
        3.5,
    ),
    SecretKind(
        "1password-service-account-token",
        "1Password service account token",
        r"ops_eyJ[a-zA-Z0-9+/]{250,}={0,3}",
        ("ops_",),
        4,
    ),
    SecretKind(
        "age-secret-key",
        "age secret key",
        r"AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}",
        ("AGE-SECRET-KEY-1",),
    ),
    # gitleaks matches the whole block: the BEGIN line, 64+ characters, then `KEY-----`. Line
    # by line, the BEGIN line is matched here and key material must follow (_key_material),
    # so code that merely names the header is not a finding.
    SecretKind(
        PRIVATE_KEY_ID,
        "private key",
        r"(?i)-----BEGIN[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----",
        ("-----begin",),
    ),
)

# Work caps. Past them the scan stops and says so: a cap is never a silent pass.
MAX_LINES_PER_FILE = 100_000
MAX_LINES_TOTAL = 300_000
MAX_CHARS_TOTAL = 32 * MIB  # characters of added lines, across all files
MAX_FINDINGS_PER_FILE = 10  # past this, the file's scan stops and one problem says so
# A private key's BEGIN line counts when key material follows within this many added lines
# (an encrypted PEM key has two header lines and a blank line first).
_KEY_MATERIAL_LINES = 5
_KEY_MATERIAL = r"[A-Za-z0-9+/]{40,}"


@dataclass(frozen=True)
class _Scanner:
    """The secret kinds, compiled once.

    An RE2 set of every kind's keywords says in one linear pass which keywords a line holds
    (as gitleaks' keyword prefilter does); only the kinds owning them then run their regex.
    A set of literals keeps the set's DFA small. That matters: RE2::Set cannot fall back to
    the NFA, and reports running out of DFA memory as "no match", which a Python caller cannot
    tell apart; RE2 checks at Compile() that the DFA can run and, for sets, never gives up
    when its cache thrashes (google/re2@972a15ce re2/compile.cc CompileSet, re2/dfa.cc "RE2::Set
    cannot fall back"). Each kind's own regex is a plain RE2, which falls back when it must.
    """

    kinds: tuple[SecretKind, ...]
    regexes: tuple[Any, ...]
    allows: tuple[tuple[Any, ...], ...]  # kind index -> regexes searched in its secrets
    allowed_paths: tuple[tuple[Any, ...], ...]  # kind index -> regexes searched in the path
    global_paths: tuple[Any, ...]  # files gitleaks does not scan
    global_allows: tuple[Any, ...]  # secrets gitleaks takes for placeholders
    keyword_set: Any
    keyword_kinds: tuple[tuple[int, ...], ...]  # keyword index in the set -> kind indices
    key_material: Any


@cache
def _scanner() -> _Scanner:
    keywords: dict[str, list[int]] = {}
    for index, kind in enumerate(SECRET_KINDS):
        for keyword in kind.keywords:
            keywords.setdefault(keyword, []).append(index)
    options = re2.Options()
    # A regex whose DFA runs out of memory on a huge line falls back to the NFA: still right,
    # so RE2 need not log it.
    options.log_errors = False
    keyword_set = re2.Set.SearchSet(options)
    for keyword in keywords:
        literal = re2.escape(keyword)
        keyword_set.Add(literal if keyword != keyword.lower() else f"(?i:{literal})")
    keyword_set.Compile()

    def compiled(patterns: Sequence[str]) -> tuple[Any, ...]:
        return tuple(re2.compile(pattern, options) for pattern in patterns)

    def rule_allowlist(kind: SecretKind) -> tuple[tuple[str, ...], tuple[str, ...]]:
        return secret_allowlists.RULE_ALLOWLISTS.get(kind.id, ((), ()))

    return _Scanner(
        kinds=SECRET_KINDS,
        regexes=tuple(re2.compile(kind.regex, options) for kind in SECRET_KINDS),
        allows=tuple(
            compiled([*([k.allow] if k.allow else []), *rule_allowlist(k)[0]]) for k in SECRET_KINDS
        ),
        allowed_paths=tuple(compiled(rule_allowlist(k)[1]) for k in SECRET_KINDS),
        global_paths=compiled(secret_allowlists.GLOBAL_PATHS),
        global_allows=compiled(secret_allowlists.GLOBAL_REGEXES),
        keyword_set=keyword_set,
        keyword_kinds=tuple(tuple(kinds) for kinds in keywords.values()),
        key_material=re2.compile(_KEY_MATERIAL, options),
    )


def shannon_entropy(text: str) -> float:
    """Bits per character, as gitleaks' shannonEntropy computes it."""
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in Counter(text).values()) if n else 0.0


def preview(secret: str) -> str:
    """What a finding may show of a secret: its first 4 characters, never more."""
    return secret[:4] + "…"


@dataclass(frozen=True)
class SecretMatch:
    kind: SecretKind
    line: int
    secret: str


def _secret_of(match: Any) -> str:
    # gitleaks: the first non-empty capture group, else the whole match.
    for group in match.groups():
        if group:
            return str(group)
    return str(match.group(0))


def find_secrets(
    lines: Sequence[tuple[int, str]],
    allow: Sequence[Any] = (),
    limit: int | None = None,
    path: str = "",
) -> list[SecretMatch]:
    """The secrets in (line number, text) pairs of the file `path`, in order, stopping after
    `limit` of them.

    Lines matching an `allow` regex are skipped, and so are gitleaks' allowlisted files and
    placeholder secrets (bot.rules.secret_allowlists). A secret that two kinds match where it
    starts (Slack's old and new bot token formats) counts once.
    """
    scanner = _scanner()
    found: list[SecretMatch] = []
    if path and any(p.search(path) for p in scanner.global_paths):
        return found
    for index, (line_no, text) in enumerate(lines):
        hits = scanner.keyword_set.Match(text)
        if not hits or any(a.search(text) for a in allow):
            continue
        candidates = sorted({k for hit in hits for k in scanner.keyword_kinds[hit]})
        starts: set[int] = set()
        for k in candidates:
            kind = scanner.kinds[k]
            for match in scanner.regexes[k].finditer(text):
                if match.start() in starts:
                    continue
                secret = _secret_of(match)
                if kind.id == PRIVATE_KEY_ID:
                    if not _key_material(scanner, text[match.end() :], lines, index):
                        continue
                elif kind.entropy and shannon_entropy(secret) <= kind.entropy:
                    continue
                if _allowlisted(scanner, k, secret, path):
                    continue
                starts.add(match.start())
                found.append(SecretMatch(kind, line_no, secret))
                if limit is not None and len(found) >= limit:
                    return found
    return found


def _allowlisted(scanner: _Scanner, kind: int, secret: str, path: str) -> bool:
    """gitleaks' checkFindingAllowed: global regexes and stopwords, then the rule's own."""
    lowered = secret.lower()
    return (
        any(a.search(secret) for a in scanner.global_allows)
        or any(word in lowered for word in secret_allowlists.GLOBAL_STOPWORDS)
        or any(a.search(secret) for a in scanner.allows[kind])
        or (bool(path) and any(p.search(path) for p in scanner.allowed_paths[kind]))
    )


def _key_material(
    scanner: _Scanner, rest: str, lines: Sequence[tuple[int, str]], index: int
) -> bool:
    """Whether key material follows a private key's BEGIN line: on the same line (a key kept
    in one string with `\\n` escapes) or on the next few consecutive added lines."""
    if scanner.key_material.search(rest):
        return True
    line_no = lines[index][0]
    following = lines[index + 1 : index + 1 + _KEY_MATERIAL_LINES]
    for offset, (next_no, text) in enumerate(following, start=1):
        if next_no != line_no + offset:
            return False  # a gap: these are not the lines right after the BEGIN line
        if scanner.key_material.search(text):
            return True
    return False


class SecretsConfig(FileRuleConfig):
    allow: list[Regex] = Field(
        default_factory=list,
        max_length=MAX_PATTERNS,
        description="RE2 regexes: an added line matching one is not scanned, e.g. a marker "
        "comment `secrets:allow` on test fixtures. To skip whole files, use `exclude`.",
    )


SECRETS_FIX = (
    "Treat the secret as leaked: revoke and rotate it, then remove it from the commits "
    "(rewrite them; a later commit deleting it leaves it in history). If it is a fake value "
    "for tests, add an `allow` pattern matching its line, or `exclude` the file."
)


def check_secrets(context: Context, config: SecretsConfig) -> Iterator[Problem]:
    allow = [_compiled(pattern) for pattern in config.allow]
    lines_left = MAX_LINES_TOTAL
    chars_left = MAX_CHARS_TOTAL
    unscanned: list[str] = []
    yield from unseen_files(context, "scanned for secrets")
    for change in context.changes:
        if change.deleted_file:
            continue  # a deletion adds no line
        path = change.new_path
        if not config.selects(path):
            continue
        whole = context.file_texts.get(path) if not change.diff_complete else None
        if not change.diff_complete and whole is None:
            yield Problem(
                message=f"{path} could not be scanned for secrets: GitLab did not return its "
                "diff (too large or collapsed), and the file was too large (or too many "
                "such files) to read whole",
                location=path,
                fix="Check the file by hand, split the change so its diff fits GitLab's diff "
                "limits, or `exclude` the path if it cannot hold secrets (generated files).",
            )
            continue
        if lines_left <= 0 or chars_left <= 0:
            unscanned.append(path)
            continue
        # GitLab left the diff out: every line of the file is scanned, as if added.
        added = (
            change.added_lines() if whole is None else list(enumerate(whole.splitlines(), start=1))
        )
        budget = min(MAX_LINES_PER_FILE, lines_left)
        scanned = 0
        for _, text in added[:budget]:
            if len(text) > chars_left:
                break
            chars_left -= len(text)
            scanned += 1
        lines_left -= scanned
        matches = find_secrets(added[:scanned], allow, limit=MAX_FINDINGS_PER_FILE + 1, path=path)
        yield from _secret_problems(path, matches)
        if scanned < len(added):
            yield Problem(
                message=f"{path}: only the first {scanned:,} of its {len(added):,} added lines "
                f"were scanned for secrets (limits: {MAX_LINES_PER_FILE:,} lines a file, "
                f"{MAX_LINES_TOTAL:,} lines and {MAX_CHARS_TOTAL:,} characters in all)",
                location=f"{path}:{added[scanned][0]}",
                fix="Check the rest by hand, split the change, or `exclude` the path if it "
                "cannot hold secrets (generated files).",
            )
    if unscanned:
        shown = ", ".join(unscanned[:5]) + (
            f" and {len(unscanned) - 5} more" if len(unscanned) > 5 else ""
        )
        yield Problem(
            message=f"{len(unscanned)} file(s) were not scanned for secrets: the scan stopped at "
            f"its limit of {MAX_LINES_TOTAL:,} added lines or {MAX_CHARS_TOTAL:,} characters: "
            f"{shown}",
            location=unscanned[0],
            fix="Check them by hand, split the change, or `exclude` paths that cannot hold "
            "secrets (generated files).",
        )


def _secret_problems(path: str, matches: list[SecretMatch]) -> Iterator[Problem]:
    for match in matches[:MAX_FINDINGS_PER_FILE]:
        if match.kind.id == PRIVATE_KEY_ID:
            what = "a private key block"  # the header is not the secret; show nothing of it
        else:
            what = f"a possible {match.kind.name} ({preview(match.secret)})"
        yield Problem(
            message=f"{what} in an added line [{match.kind.id}]",
            location=f"{path}:{match.line}",
        )
    if len(matches) > MAX_FINDINGS_PER_FILE:
        # find_secrets stopped at the next one: say so rather than count them all.
        line = matches[MAX_FINDINGS_PER_FILE].line
        yield Problem(
            message=f"more possible secrets in {path} from line {line} on; after "
            f"{MAX_FINDINGS_PER_FILE} findings the rest of the file is not listed",
            location=f"{path}:{line}",
        )


SECRETS = _file_rule(
    "files.secrets",
    "No secrets in added lines",
    SecretsConfig,
    check_secrets,
    Need.FILE_TEXTS,
    fix=SECRETS_FIX,
)


RULES: tuple[Rule[Any], ...] = (PROHIBITED, MAX_SIZE, CO_CHANGE, SECRETS)
