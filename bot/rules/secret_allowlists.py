"""gitleaks' false-positive rules for the secret kinds the bot uses: data, not code.

Verbatim from gitleaks' default config, config/gitleaks.toml at
gitleaks/gitleaks@b58d3f102cf3a2c84cb7f923d05c25c9b1aed84b (MIT License, Copyright (c) 2019
Zachary Rice): its global `[allowlist]` (paths, regexes, stopwords) and the `allowlists` of the
rules in bot.rules.files.SECRET_KINDS that have one. gitleaks applies them as bot.rules.files
does (detect/detect.go and config/allowlist.go at that commit):

- a file whose path matches a global path regex is not scanned (checkCommitOrPathAllowed);
- a finding is dropped when its secret matches a global regex or contains a stopword (in any
  case), or matches one of its rule's regexes, or its file matches one of its rule's paths
  (checkFindingAllowed; regexTarget "secret" and condition OR for all of these).

Every regex is RE2 syntax (gitleaks compiles them with Go's regexp, the same language) and is
searched, unanchored, as Go's MatchString does.
"""

from __future__ import annotations

# [allowlist] paths: lock files, vendored code, binaries and fonts, build wrappers.
GLOBAL_PATHS: tuple[str, ...] = (
    r"gitleaks\.toml",
    r"(?i)\.(?:bmp|gif|jpe?g|png|svg|tiff?)$",
    r"(?i)\.(?:eot|[ot]tf|woff2?)$",
    r"(?i)\.(?:docx?|xlsx?|pdf|bin|socket|vsidx|v2|suo|wsuo|.dll|pdb|exe|gltf)$",
    r"go\.(?:mod|sum|work(?:\.sum)?)$",
    r"(?:^|/)vendor/modules\.txt$",
    r"(?:^|/)vendor/(?:github\.com|golang\.org/x|google\.golang\.org|gopkg\.in|istio\.io|k8s\.io|sigs\.k8s\.io)(?:/.*)?$",
    r"(?:^|/)gradlew(?:\.bat)?$",
    r"(?:^|/)gradle\.lockfile$",
    r"(?:^|/)mvnw(?:\.cmd)?$",
    r"(?:^|/)\.mvn/wrapper/MavenWrapperDownloader\.java$",
    r"(?:^|/)node_modules(?:/.*)?$",
    r"(?:^|/)(?:deno\.lock|npm-shrinkwrap\.json|package-lock\.json|pnpm-lock\.yaml|yarn\.lock)$",
    r"(?:^|/)bower_components(?:/.*)?$",
    r"(?:^|/)(?:angular|bootstrap|jquery(?:-?ui)?|plotly|swagger-?ui)[a-zA-Z0-9.-]*(?:\.min)?\.js(?:\.map)?$",
    r"(?:^|/)javascript\.json$",
    r"(?:^|/)(?:Pipfile|poetry)\.lock$",
    r"(?i)(?:^|/)(?:v?env|virtualenv)/lib(?:64)?(?:/.*)?$",
    r"(?i)(?:^|/)(?:lib(?:64)?/python[23](?:\.\d{1,2})+|python/[23](?:\.\d{1,2})+/lib(?:64)?)(?:/.*)?$",
    r"(?i)(?:^|/)[a-z0-9_.]+-[0-9.]+\.dist-info(?:/.+)?$",
    r"(?:^|/)vendor/(?:bundle|ruby)(?:/.*?)?$",
    r"\.gem$",
    r"verification-metadata\.xml",
    r"Database.refactorlog",
    r"(?:^|/)\.git$",
)

# [allowlist] regexes: template placeholders, variables, format strings, plain paths.
GLOBAL_REGEXES: tuple[str, ...] = (
    r"(?i)^true|false|null$",
    r"^(?i:a+|b+|c+|d+|e+|f+|g+|h+|i+|j+|k+|l+|m+|n+|o+|p+|q+|r+|s+|t+|u+|v+|w+|x+|y+|z+|\*+|\.+)$",
    r"^\$(?:\d+|{\d+})$",
    r"^\$(?:[A-Z_]+|[a-z_]+)$",
    r"^\${(?:[A-Z_]+|[a-z_]+)}$",
    r"^\{\{[ \t]*[\w ().|]+[ \t]*}}$",
    r"""^\$\{\{[ \t]*(?:(?:env|github|secrets|vars)(?:\.[A-Za-z]\w+)+[\w "'&./=|]*)[ \t]*}}$""",
    r"^%(?:[A-Z_]+|[a-z_]+)%$",
    r"^%[+\-# 0]?[bcdeEfFgGoOpqstTUvxX]$",
    r"^\{\d{0,2}}$",
    r"^@(?:[A-Z_]+|[a-z_]+)@$",
    r"^/Users/(?i)[a-z0-9]+/[\w .-/]+$",
    r"^/(?:bin|etc|home|opt|tmp|usr|var)/[\w ./-]+$",
)

# [allowlist] stopwords, looked for in the lower-cased secret.
GLOBAL_STOPWORDS: tuple[str, ...] = (
    r"014df517-39d1-4453-b7b3-9930c563627c",
    r"abcdefghijklmnopqrstuvwxyz",
)

# Rule allowlists by kind id: (regexes searched in the secret, regexes searched in the path).
RULE_ALLOWLISTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "aws-access-token": (
        (r".+EXAMPLE$",),
        (),
    ),
    "gcp-api-key": (
        (
            r"AIzaSyabcdefghijklmnopqrstuvwxyz1234567",
            r"AIzaSyAnLA7NfeLquW1tJFpx_eQCxoX-oo6YyIs",
            r"AIzaSyCkEhVjf3pduRDt6d1yKOMitrUEke8agEM",
            r"AIzaSyDMAScliyLx7F0NPDEJi1QmyCgHIAODrlU",
            r"AIzaSyD3asb-2pEZVqMkmL6M9N6nHZRR_znhrh0",
            r"AIzayDNSXIbFmlXbIE6mCzDLQAqITYefhixbX4A",
            r"AIzaSyAdOS2zB6NCsk1pCdZ4-P6GBdi_UUPwX7c",
            r"AIzaSyASWm6HmTMdYWpgMnjRBjxcQ9CKctWmLd4",
            r"AIzaSyANUvH9H9BsUccjsu2pCmEkOPjjaXeDQgY",
            r"AIzaSyA5_iVawFQ8ABuTZNUdcwERLJv_a_p4wtM",
            r"AIzaSyA4UrcGxgwQFTfaI3no3t7Lt1sjmdnP5sQ",
            r"AIzaSyDSb51JiIcB6OJpwwMicseKRhhrOq1cS7g",
            r"AIzaSyBF2RrAIm4a0mO64EShQfqfd2AFnzAvvuU",
            r"AIzaSyBcE-OOIbhjyR83gm4r2MFCu4MJmprNXsw",
            r"AIzaSyB8qGxt4ec15vitgn44duC5ucxaOi4FmqE",
            r"AIzaSyA8vmApnrHNFE0bApF4hoZ11srVL_n0nvY",
        ),
        (),
    ),
    "github-pat": (
        (),
        (r"(?:^|/)@octokit/auth-token/README\.md$",),
    ),
    "github-app-token": (
        (),
        (r"(?:^|/)@octokit/auth-token/README\.md$",),
    ),
    "vault-service-token": (
        (r"s\.[A-Za-z]{24}",),
        (),
    ),
}
