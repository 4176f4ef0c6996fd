"""The note as GitLab would render it: CommonMark + GFM (tables, strikethrough, autolinks,
task lists) with raw HTML allowed, by markdown-it-py, a test dependency.

GitLab's own reference filters (`#1`, `!2`, `@user`, ...) run on the rendered text and have
no markdown-it equivalent, so tests check those in the Markdown source instead
(see `bot.report.escape`).
"""

from __future__ import annotations

import html
from html.parser import HTMLParser

from markdown_it import MarkdownIt
from mdit_py_plugins.tasklists import tasklists_plugin

# GitLab renders these shortcodes as emoji; markdown-it leaves them as text.
EMOJI = {
    ":x:": "\u274c",
    ":warning:": "\u26a0\ufe0f",
    ":white_check_mark:": "\u2705",
    ":information_source:": "\u2139\ufe0f",
}


def renderer() -> MarkdownIt:
    return MarkdownIt("gfm-like", {"html": True}).use(tasklists_plugin)


def render(markdown: str) -> str:
    rendered = renderer().render(markdown)
    for code, emoji in EMOJI.items():
        rendered = rendered.replace(code, emoji)
    return rendered


class Elements(HTMLParser):
    """Every element of a rendered note, with its attributes, and its text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.comments: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))

    def handle_comment(self, data: str) -> None:
        self.comments.append(data)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def elements(markdown: str) -> Elements:
    parser = Elements()
    parser.feed(render(markdown))
    parser.close()
    return parser


PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><style>
body {{ margin: 0; background: #fff; color: #333238; font: 14px/1.5 -apple-system,
  "Segoe UI", Roboto, "Noto Sans", Ubuntu, sans-serif; }}
.note {{ width: 830px; margin: 16px auto; border: 1px solid #dcdcde; border-radius: 4px;
  padding: 12px 16px; }}
.author {{ color: #626168; margin-bottom: 8px; }}
h3 {{ font-size: 1.25em; margin: 12px 0 8px; }} h4 {{ font-size: 1.1em; margin: 16px 0 4px; }}
table {{ border-collapse: collapse; margin: 8px 0; }}
th, td {{ border: 1px solid #dcdcde; padding: 4px 8px; text-align: left; vertical-align: top; }}
code {{ background: #ececef; border-radius: 3px; padding: 1px 4px; font-size: 90%; }}
a {{ color: #1068bf; text-decoration: none; }}
summary {{ cursor: pointer; margin: 8px 0; }}
ul {{ padding-left: 24px; margin: 4px 0; }} p {{ margin: 8px 0; }}
sub {{ color: #737278; }}
</style><title>{title}</title></head>
<body><div class="note"><div class="author"><b>Compliance Bot</b> @compliance-bot · just now
</div>{body}</div></body></html>
"""


def page(markdown: str, title: str) -> str:
    """A GitLab-like page around the rendered note: an MR discussion is about 830 px wide."""
    return PAGE.format(title=html.escape(title), body=render(markdown))


# GitLab's reference characters (user `@`, issue `#`, MR `!`, epic `&`, milestone `%`,
# snippet `$`, label `~`, alert `^`): gitlabhq lib/banzai/filter/references/*. Outside code
# and link destinations each must be backslash-escaped in the source, which GitLab keeps
# literal (lib/banzai/filter/markdown_pre_escape_filter.rb).
REFERENCE_CHARACTERS = "@#!&%$~^"
BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"
ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff"


def inline_tokens(markdown: str) -> list[tuple[str, str]]:
    """(type, content) of every inline token, with escapes kept apart from text."""
    md = renderer().disable("text_join")
    found: list[tuple[str, str]] = []
    for block in md.parse(markdown):
        if block.type == "html_block":
            found.append(("html_block", block.content))
        for token in block.children or ():
            found.append((token.type, token.content))
    return found


def bare_references(markdown: str) -> list[str]:
    """Text the reference filters could read as a reference: a reference character in
    plain text that no backslash escapes."""
    found: list[str] = []
    in_link = False  # GitLab links no reference inside a link (nor inside code)
    for kind, content in inline_tokens(markdown):
        in_link = (in_link or kind == "link_open") and kind != "link_close"
        if kind == "text" and not in_link and any(c in content for c in REFERENCE_CHARACTERS):
            found.append(content)
    return found


def code_spans(markdown: str) -> list[str]:
    return [content for kind, content in inline_tokens(markdown) if kind == "code_inline"]


def shown_text(markdown: str) -> str:
    """The text a reader sees in a rendered note: escapes resolved, zero-width spaces gone."""
    return "".join(elements(markdown).text).replace("\u200b", "")
