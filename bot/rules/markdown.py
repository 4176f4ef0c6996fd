"""An MR description as GitLab renders it: the text a reader sees, and its task list items.

GitLab renders Markdown as GLFM: CommonMark plus GitHub's task lists
(https://docs.gitlab.com/user/markdown/). The rules that read a description judge what that
rendering shows, not the raw text, so a description cannot pass a rule by hiding something
from a line-based reading, nor fail one for text nobody sees:

- an HTML comment (`<!-- ... -->`) hides text only where CommonMark makes it a comment: a line
  starting with `<!--` opens an HTML block that runs to the line holding `-->` (or to the end);
  inside a paragraph a comment must be closed, and an unclosed `<!--` there is plain text;
- fenced and indented code blocks, and code spans, show text but state nothing (no task, no
  issue reference);
- a task list item is a list item (also in a blockquote or nested list) whose first paragraph
  starts with `[ ]`, `[x]` or `[X]` and whitespace; GitLab's `[~]` (inapplicable) counts as
  done.

The parser is markdown-it-py's CommonMark preset, pure and linear in practice; descriptions
longer than MAX_MARKDOWN_LENGTH are judged on their first MAX_MARKDOWN_LENGTH characters, which
the rules report rather than pass.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from markdown_it import MarkdownIt
from markdown_it.token import Token

# Parsing is pure Python on the event loop, linear in the length: measured worst cases of
# 120-190 ms of CPU for 65,536 characters of adversarial Markdown (3,500 tasks, or dense
# inline markup), a quarter of that here. Past this many characters (GitLab allows 1,000,000)
# a description is judged on this prefix, and the rules say so rather than pass.
MAX_MARKDOWN_LENGTH = 16_384

# GFM task list item marker (https://github.github.com/gfm/#task-list-items-extension-): `[`,
# a whitespace character or `x`/`X`, `]`, then whitespace; GitLab adds `[~]` (inapplicable,
# GitLab 15.3+, https://docs.gitlab.com/user/markdown/#task-lists). markdown-it has already
# trimmed the item's leading whitespace.
_TASK_MARKER = re.compile(r"\[([ \t\n\v\f\rxX~])\][ \t\n\v\f\r]+")
_DONE = frozenset("xX~")
# An HTML tag, for the text an HTML block shows. `[^<>]` keeps the scan linear.
_TAG = re.compile(r"<[^<>]*>")


@dataclass(frozen=True)
class Task:
    line: int  # 1-based line of the list item in the description
    text: str  # what the item shows after its checkbox
    done: bool


@dataclass(frozen=True)
class Rendered:
    text: str  # every character a reader sees: prose and code, no markup, no comments
    # The inline Markdown of the prose, code and HTML comments left out: where GitLab finds
    # issue references and its closing pattern (which it reads in the Markdown source).
    prose: str
    tasks: tuple[Task, ...]
    length: int  # characters of the whole description
    judged: int  # characters of it that were parsed

    @property
    def truncated(self) -> bool:
        return self.judged < self.length


def _parser() -> MarkdownIt:
    # CommonMark with raw HTML, as GitLab's renderer passes HTML through its sanitizer; no
    # linkify, so a bare URL stays text in `prose` as in the Markdown source.
    return MarkdownIt("commonmark")


_MD = _parser()


@lru_cache(maxsize=32)
def render(markdown: str) -> Rendered:
    """The rendering of `markdown`; cached, as several rules read one description."""
    source = markdown[:MAX_MARKDOWN_LENGTH]
    tokens = _MD.parse(source)
    text: list[str] = []
    prose: list[str] = []
    tasks: list[Task] = []
    for index, token in enumerate(tokens):
        if token.type == "inline":
            text.append(_inline_text(token.children or ()))
            prose.append(_inline_prose(token.children or ()))
            task = _task(tokens, index)
            if task is not None:
                tasks.append(task)
        elif token.type in ("fence", "code_block"):
            text.append(token.content)
        elif token.type == "html_block":
            shown = _without_comments(token.content)
            text.append(_TAG.sub("", shown))
            prose.append(shown)
    return Rendered(
        text="\n".join(part for part in text if part.strip()),
        prose="\n\n".join(part for part in prose if part.strip()),
        tasks=tuple(tasks),
        length=len(markdown),
        judged=len(source),
    )


def _task(tokens: Sequence[Token], index: int) -> Task | None:
    """The task list item whose first paragraph is the inline token at `index`, if any."""
    if index < 2 or tokens[index - 1].type != "paragraph_open":
        return None
    item = tokens[index - 2]
    if item.type != "list_item_open":
        return None
    marker = _TASK_MARKER.match(tokens[index].content)
    if marker is None:
        return None
    shown = _inline_text(tokens[index].children or ())
    # The marker is literal text at the start (a `[x]` link would need a definition of `x`).
    shown = _TASK_MARKER.sub("", shown, count=1) if _TASK_MARKER.match(shown) else shown
    line = (item.map[0] if item.map else 0) + 1
    return Task(line=line, text=shown.strip(), done=marker.group(1) in _DONE)


def _inline_text(children: Sequence[Token]) -> str:
    """What an inline run shows: its text and code, without markup or HTML."""
    parts: list[str] = []
    for child in children:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append("\n")
        elif child.type == "image":
            parts.append(_inline_text(child.children or ()))
    return "".join(parts)


def _inline_prose(children: Sequence[Token]) -> str:
    """An inline run as Markdown again, less code spans and HTML comments.

    Emphasis and link markup stay, so that `Closes **#12**` is not taken for `Closes #12`:
    GitLab matches its closing pattern on the source (Gitlab::ClosingIssueExtractor).
    """
    parts: list[str] = []
    links: list[str] = []
    for child in children:
        kind = child.type
        if kind == "text":
            parts.append(child.content)
        elif kind in ("softbreak", "hardbreak"):
            parts.append("\n")
        elif kind == "html_inline":
            if not child.content.startswith("<!--"):
                parts.append(child.content)
        elif kind == "link_open":
            autolink = child.markup == "autolink"
            parts.append("<" if autolink else "[")
            links.append(">" if autolink else f"]({child.attrGet('href') or ''})")
        elif kind == "link_close":
            parts.append(links.pop() if links else "")
        elif kind == "image":
            parts.append(f"![{_inline_prose(child.children or ())}]")
        elif kind.endswith(("_open", "_close")):
            parts.append(child.markup)
    return "".join(parts)


def _without_comments(html: str) -> str:
    """HTML with its comments cut out; an unclosed comment runs to the end."""
    kept: list[str] = []
    position = 0
    while True:
        start = html.find("<!--", position)
        if start < 0:
            kept.append(html[position:])
            return "".join(kept)
        kept.append(html[position:start])
        end = html.find("-->", start + 2)  # `<!-->` is a whole comment (CommonMark 0.31)
        if end < 0:
            return "".join(kept)
        position = end + 3
