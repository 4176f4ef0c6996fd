"""`compliance-bot audit --format html`: the audit as one self-contained page.

The page needs nothing but itself: its CSS and script are inline, there is no CDN, no font
and no charting library (the chart is CSS bars), so it opens from a CI artifact or a mail
attachment, on a phone, and prints.

Every name, description, message and URL from GitLab is HTML-escaped where it is written,
and none of it ever enters the script: rows carry what sorting and filtering need in
`data-` attributes (escaped like any attribute), checks are referred to by number, and the
script only reorders and hides the rows the page already holds (DESIGN.md, invariant 13).

`render_html` is a pure function of the AuditResult.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import TYPE_CHECKING

from bot.audit_model import OUTCOMES, AuditResult, Row, Status, check_of
from bot.audit_report import change_of, checks_failed, counts, shown
from bot.model import Severity

if TYPE_CHECKING:
    from bot.audit_history import Comparison

_SHORT_NAMES = {
    "repository.issue_templates": "issue templates",
    "repository.merge_request_templates": "MR templates",
    "repository.description": "description",
    "repository.topics": "topics",
    "repository.codeowners": "CODEOWNERS",
    "config": "valid config",
    "profile.readme": "profile README",
}
_CHANGE_RANK = {"worse": 0, "new": 1, "better": 2, "": 3}
_CHANGE_MARK = {"worse": "▼ worse", "better": "▲ better", "new": "● new"}


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def short_name(check: str) -> str:
    """`LICENSE` for `repository.required_files: LICENSE`, `topics` for `repository.topics`."""
    if check.startswith("repository.required_files: "):
        return check.removeprefix("repository.required_files: ")
    return _SHORT_NAMES.get(check, check)


def _href(url: str) -> str:
    """The URL if it is a web address; GitLab's `web_url` is, anything else is not linked."""
    return url if url.startswith(("https://", "http://")) else ""


def _link(text: str, url: str) -> str:
    href = _href(url)
    return f'<a href="{_e(href)}">{_e(text)}</a>' if href else _e(text)


def _check_severities(rows: Sequence[Row]) -> dict[str, Severity]:
    """The most severe finding behind each check: it colours the check's bar."""
    order = {Severity.ERROR: 0, Severity.WARNING: 1, Severity.INFO: 2}
    worst: dict[str, Severity] = {}
    for row in rows:
        for finding in row.findings:
            check = check_of(finding)
            if check not in worst or order[finding.severity] < order[worst[check]]:
                worst[check] = finding.severity
    return worst


def _cards(result: AuditResult, table: str, title: str, rows: Sequence[Row]) -> str:
    tally = counts(rows)
    before = (result.comparison.previous_counts.get(table) if result.comparison else None) or {}
    cards = []
    for status in OUTCOMES:
        number = tally[status.value.replace("-", "_")]
        delta = ""
        if status.value in before:
            diff = number - before[status.value]
            delta = f'<span class="delta">{diff:+d} since last run</span>' if diff else ""
        cards.append(
            f'<button type="button" class="card o-{status.value}" data-filter-table="{table}" '
            f'data-filter-outcome="{status.value}" id="{table}-count-{status.value}">'
            f'<span class="n">{number}</span><span class="label">{status.value}</span>'
            f"{delta}</button>"
        )
    return (
        f'<section class="counts" aria-label="{_e(title)} by outcome"><h2>{_e(title)}: '
        f'<span id="{table}-total">{tally["total"]}</span></h2>'
        f'<div class="cards">{"".join(cards)}</div></section>'
    )


def _chart(rows: Sequence[Row], index: dict[str, int]) -> str:
    failed = checks_failed(rows)
    if not failed:
        return '<section class="chart"><h2>Projects lacking each check</h2><p>None.</p></section>'
    severities = _check_severities(rows)
    total = max(1, len(rows))
    bars = []
    for check, number in failed.items():
        share = 100 * number / total
        severity = severities.get(check, Severity.WARNING)
        bars.append(
            f'<li class="bar s-{severity.value}" data-check="{_e(check)}">'
            f'<button type="button" class="bar-label" data-filter-table="projects" '
            f'data-filter-check="{index[check]}" title="{_e(check)}">{_e(short_name(check))}'
            f'</button><span class="track"><span class="fill" style="width:{share:.1f}%">'
            f'</span></span><span class="bar-n">{number}</span></li>'
        )
    return (
        '<section class="chart" aria-label="Projects lacking each check">'
        "<h2>Projects lacking each check</h2>"
        '<p class="hint">Bars in red fail the run; amber ones are warnings. '
        "Select one to list those projects.</p>"
        f'<ol class="bars">{"".join(bars)}</ol></section>'
    )


def _comparison(comparison: Comparison) -> str:
    from bot.audit_history import DIRECTIONS

    groups = []
    for direction in DIRECTIONS:
        changes = comparison.of(direction)
        if not changes:
            continue
        items = "".join(
            f"<li>{_e(c.kind)} <strong>{_e(c.name)}</strong>: {_e(c.describe())}</li>"
            for c in changes[:500]
        )
        more = f"<li>… and {len(changes) - 500} more</li>" if len(changes) > 500 else ""
        # Open unless long: what got worse always is.
        opened = " open" if direction == "worse" or len(changes) <= 50 else ""
        groups.append(
            f'<details class="chg c-{direction}"{opened}>'
            f"<summary>{len(changes)} {direction}</summary><ul>{items}{more}</ul></details>"
        )
    body = "".join(groups) or "<p>Nothing changed.</p>"
    return (
        '<section class="since" id="since"><h2>Since the last run</h2>'
        f"<p>Compared with the run of {_e(comparison.previous_at or 'unknown time')} "
        f"({_e(comparison.source)}).</p>{body}</section>"
    )


def _findings(row: Row) -> str:
    parts = []
    if row.status is Status.ERROR:
        parts.append(f'<p class="reason">Could not be checked: {_e(row.reason)}</p>')
    if row.findings:
        items = []
        for finding in row.findings:
            fix = f'<div class="fix">Fix: {_e(finding.fix)}</div>' if finding.fix else ""
            items.append(
                f'<li><span class="sev s-{finding.severity.value}">{finding.severity.value}'
                f"</span> <code>{_e(finding.rule)}</code> {_e(finding.message)}{fix}</li>"
            )
        parts.append(f'<ul class="findings">{"".join(items)}</ul>')
    if row.details:
        details = "".join(f"<li>{_e(d)}</li>" for d in row.details)
        parts.append(f'<ul class="details">{details}</ul>')
    if row.config_source:
        parts.append(f'<p class="src">Judged by: {_e(row.config_source)}</p>')
    if row.status is Status.COMPLIANT:
        parts.append("<p>Nothing is missing.</p>")
    return "".join(parts)


def _lacking(row: Row) -> str:
    if row.status is Status.ERROR:
        return f'<span class="reason">{_e(row.reason)}</span>'
    names = [short_name(check) for check in row.checks]
    return _e(", ".join(names)) if names else '<span class="none">—</span>'


def _table(
    result: AuditResult, table: str, title: str, rows: Sequence[Row], only_failing: bool
) -> str:
    index = {check: i for i, check in enumerate(checks_failed(rows))}
    compared = result.comparison is not None
    listed = shown(result, rows, only_failing)
    columns = [
        ("name", "text", title),
        ("rank", "number", "Outcome"),
        ("errors", "number", "Errors"),
        ("warnings", "number", "Warnings"),
        ("lacking", "number", "Lacking"),
    ]
    if compared:
        columns.append(("change", "number", "Since last run"))
    head = "".join(
        f'<th scope="col"><button type="button" data-sort="{key}" data-type="{kind}">'
        f"{_e(label)}</button></th>"
        for key, kind, label in columns
    )
    bodies = []
    for row in listed:
        change = change_of(result, row)
        checks = " ".join(str(index[c]) for c in row.checks if c in index)
        cells = [
            f'<td data-label="{_e(title)}"><button type="button" class="toggle" '
            f'aria-expanded="false" aria-label="findings of {_e(row.name)}">▸</button> '
            f"{_link(row.name, row.web_url)}</td>",
            f'<td data-label="Outcome"><span class="badge o-{row.status.value}">'
            f"{row.status.value}</span></td>",
            f'<td class="num" data-label="Errors">{row.errors}</td>',
            f'<td class="num" data-label="Warnings">{row.warnings}</td>',
            f'<td data-label="Lacking">{_lacking(row)}</td>',
        ]
        if compared:
            mark = _CHANGE_MARK.get(change, "")
            cells.append(
                f'<td data-label="Since last run" class="c-{change or "same"}">{mark}</td>'
            )
        bodies.append(
            f'<tbody class="row" data-name="{_e(row.name.lower())}" data-id="{row.id}" '
            f'data-outcome="{row.status.value}" data-rank="{OUTCOMES.index(row.status)}" '
            f'data-errors="{row.errors}" data-warnings="{row.warnings}" '
            f'data-lacking="{len(row.checks)}" data-checks="{checks}" data-change="{change}" '
            f'data-change-rank="{_CHANGE_RANK[change]}">'
            f'<tr class="main">{"".join(cells)}</tr>'
            f'<tr class="detail" hidden><td colspan="{len(columns)}">{_findings(row)}</td></tr>'
            "</tbody>"
        )
    outcome_options = "".join(f'<option value="{s.value}">{s.value}</option>' for s in OUTCOMES)
    check_options = "".join(
        f'<option value="{i}">{_e(short_name(c))} ({_e(c)})</option>' for c, i in index.items()
    )
    change_filter = ""
    if compared:
        change_filter = (
            f'<label>Since last run <select id="{table}-change"><option value="">any</option>'
            '<option value="worse">worse</option><option value="better">better</option>'
            '<option value="new">new</option></select></label>'
        )
    filtered = (
        f"; only the rows that fail the run (--only-failing), of {len(rows)}"
        if only_failing
        else ""
    )
    return (
        f'<section class="list" aria-label="{_e(title)}s"><h2>{_e(title)}s</h2>'
        f'<div class="controls" role="search">'
        f'<label>Outcome <select id="{table}-outcome"><option value="">any</option>'
        f"{outcome_options}</select></label>"
        f'<label>Lacking <select id="{table}-check"><option value="">anything or nothing'
        f"</option>{check_options}</select></label>"
        f"{change_filter}"
        f'<label>Name <input type="search" id="{table}-search" placeholder="filter by name">'
        "</label>"
        f'<span class="showing">Showing <output id="{table}-shown">{len(listed)}</output> '
        f"of {len(listed)}{filtered}</span></div>"
        f'<div class="scroll"><table class="rows" id="{table}"><thead><tr>{head}</tr></thead>'
        f"{''.join(bodies)}</table></div></section>"
    )


def render_html(result: AuditResult, *, only_failing: bool = False) -> str:
    """The whole page."""
    project_index = {check: i for i, check in enumerate(checks_failed(result.projects))}
    sections = [_cards(result, "projects", "Projects", result.projects)]
    if result.members is not None:
        sections.append(_cards(result, "members", "Members", result.members))
    errors = "".join(f'<p class="alert" role="alert">{_e(e)}</p>' for e in result.errors)
    since = _comparison(result.comparison) if result.comparison is not None else ""
    tables = _table(result, "projects", "Project", result.projects, only_failing)
    if result.members is not None:
        tables += _table(result, "members", "Member", result.members, only_failing)
    meta = [
        f"finished {_e(result.finished_at)}" if result.finished_at else "",
        f"in {result.seconds:.1f} s",
        f"fails on: {_e(result.fail_on.value)}",
        f"exit code {result.exit_code()}",
    ]
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        # Nothing is fetched: no script, style, font or image comes from elsewhere.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">"
        f"<title>Compliance audit of {_e(result.group)}</title><style>{_CSS}</style></head>"
        f'<body><header><h1>Compliance audit of <span class="group">{_e(result.group)}</span>'
        f'</h1><p class="meta">{" · ".join(m for m in meta if m)}</p></header><main>'
        f"{errors}{''.join(sections)}{_chart(result.projects, project_index)}{since}{tables}"
        f"{_LEGEND}</main><script>{_SCRIPT}</script></body></html>\n"
    )


_LEGEND = (
    '<footer><h2>Outcomes</h2><dl class="legend">'
    '<dt><span class="badge o-compliant">compliant</span></dt><dd>no finding</dd>'
    '<dt><span class="badge o-warnings">warnings</span></dt><dd>only warnings: gaps that do '
    "not fail the run (unless --fail-on warning)</dd>"
    '<dt><span class="badge o-non-compliant">non-compliant</span></dt><dd>at least one error, '
    "or an invalid config</dd>"
    '<dt><span class="badge o-error">error</span></dt><dd>could not be checked; the reason is '
    "given. Never counted as compliant.</dd></dl>"
    "<p>Made by compliance-bot audit.</p></footer>"
)

_CSS = """
:root{--ok:#1a7f37;--warn:#9a6700;--bad:#cf222e;--err:#8250df;--fg:#1f2328;--mute:#59636e;
--line:#d1d9e0;--bg:#fff;--soft:#f6f8fa;font-family:system-ui,-apple-system,"Segoe UI",Roboto,
sans-serif;color:var(--fg);background:var(--bg)}
body{margin:0 auto;max-width:1200px;padding:1rem;line-height:1.4}
h1{font-size:1.5rem;margin:.2rem 0}h2{font-size:1.15rem;margin:1.2rem 0 .5rem}
.meta,.hint,.showing{color:var(--mute);font-size:.9rem}
.alert{border:1px solid var(--bad);background:#ffebe9;padding:.6rem;border-radius:6px}
.cards{display:grid;grid-template-columns:repeat(4,1fr);gap:.6rem}
.card{display:flex;flex-direction:column;align-items:flex-start;padding:.7rem;border-radius:8px;
border:1px solid var(--line);border-left:6px solid;background:var(--soft);cursor:pointer;
font:inherit;color:inherit;text-align:left}
.card .n{font-size:1.8rem;font-weight:700}.card .delta{font-size:.8rem;color:var(--mute)}
.o-compliant{border-color:var(--ok)}.o-warnings{border-color:var(--warn)}
.o-non-compliant{border-color:var(--bad)}.o-error{border-color:var(--err)}
.badge{display:inline-block;padding:0 .45rem;border-radius:1rem;border:1px solid;
font-size:.85rem;white-space:nowrap}
.badge.o-compliant{color:var(--ok)}.badge.o-warnings{color:var(--warn)}
.badge.o-non-compliant{color:var(--bad)}.badge.o-error{color:var(--err)}
.bars{list-style:none;padding:0;margin:0}
.bar{display:grid;grid-template-columns:minmax(8rem,14rem) 1fr 3.5rem;gap:.5rem;
align-items:center;margin:.2rem 0}
.bar-label{font:inherit;background:none;border:0;text-align:right;cursor:pointer;
color:inherit;padding:0;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.track{background:var(--soft);border:1px solid var(--line);height:1.1rem;border-radius:4px;
overflow:hidden}.fill{display:block;height:100%}
.s-error .fill{background:var(--bad)}.s-warning .fill{background:#d4a72c}
.s-info .fill{background:#54aeff}.bar-n{font-variant-numeric:tabular-nums}
.sev{font-size:.8rem;font-weight:600;text-transform:uppercase}
.sev.s-error{color:var(--bad)}.sev.s-warning{color:var(--warn)}.sev.s-info{color:var(--mute)}
.controls{display:flex;flex-wrap:wrap;gap:.6rem 1rem;align-items:center;margin:.4rem 0}
.controls select,.controls input{font:inherit;padding:.2rem;max-width:16rem}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:.92rem}
th{text-align:left;border-bottom:2px solid var(--line);white-space:nowrap}
th button{font:inherit;font-weight:600;background:none;border:0;padding:.4rem .2rem;
cursor:pointer;color:inherit}
th[aria-sort=ascending] button::after{content:" ▲"}
th[aria-sort=descending] button::after{content:" ▼"}
td{padding:.35rem .3rem;border-bottom:1px solid var(--line);vertical-align:top}
td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.detail td{background:var(--soft)}
.toggle{font:inherit;border:0;background:none;cursor:pointer;padding:0 .2rem;color:var(--mute)}
.toggle[aria-expanded=true]{transform:rotate(90deg)}
.findings{margin:.2rem 0;padding-left:1.2rem}.fix{color:var(--mute);font-size:.88rem}
.reason{color:var(--err)}.none{color:var(--mute)}
.c-worse{color:var(--bad)}.c-better{color:var(--ok)}.c-new{color:var(--mute)}
details.chg{margin:.3rem 0}details.chg summary{cursor:pointer;font-weight:600}
.legend{display:grid;grid-template-columns:max-content 1fr;gap:.3rem .8rem}
.legend dd{margin:0}footer{margin-top:2rem;color:var(--mute);font-size:.9rem}
code{font-size:.85em}a{color:#0969da}[hidden]{display:none!important}
@media (max-width:700px){
body{padding:.6rem}.cards{grid-template-columns:repeat(2,1fr)}
.bar{grid-template-columns:7rem 1fr 2.5rem}
table,tbody,tr,td{display:block;width:auto}
thead tr{display:flex;flex-wrap:wrap;gap:.2rem}th{border:0}
th button{border:1px solid var(--line);border-radius:4px;padding:.1rem .4rem;font-size:.85rem}
tbody.row{border:1px solid var(--line);border-radius:6px;margin:.4rem 0;padding:.2rem .4rem}
td{border:0;padding:.1rem 0}td.num{text-align:left}
tr.main td::before{content:attr(data-label) ": ";color:var(--mute);font-size:.85rem}
tr.main td:first-child::before{content:none}tr.main td:first-child{font-weight:600}
tr.detail td{display:block}
}
@media print{
:root{font-size:10pt}body{max-width:none;padding:0}
.controls,.toggle,.hint,th button::after{display:none}
.card,.badge,.fill,.track{-webkit-print-color-adjust:exact;print-color-adjust:exact}
tbody.row,.bar,.card{break-inside:avoid}a{color:inherit;text-decoration:none}
.scroll{overflow:visible}details.chg>*{display:block}
}
"""

# Static: it reads only data- attributes and numbers, never builds markup from text.
_SCRIPT = """
(function () {
  "use strict";
  function byId(id) { return document.getElementById(id); }
  function setup(table) {
    var id = table.id;
    var bodies = Array.prototype.slice.call(table.tBodies);
    var outcome = byId(id + "-outcome"), check = byId(id + "-check");
    var search = byId(id + "-search"), change = byId(id + "-change");
    var count = byId(id + "-shown");
    function apply() {
      var o = outcome.value, c = check.value, q = search.value.trim().toLowerCase();
      var ch = change ? change.value : "", n = 0;
      bodies.forEach(function (b) {
        var ok = (!o || b.dataset.outcome === o) &&
          (!c || b.dataset.checks.split(" ").indexOf(c) >= 0) &&
          (!q || b.dataset.name.indexOf(q) >= 0) &&
          (!ch || b.dataset.change === ch);
        b.hidden = !ok;
        if (ok) { n += 1; }
      });
      count.textContent = String(n);
    }
    [outcome, check, search, change].forEach(function (el) {
      if (el) { el.addEventListener("input", apply); el.addEventListener("change", apply); }
    });
    table.querySelectorAll("thead button[data-sort]").forEach(function (button) {
      button.addEventListener("click", function () {
        var key = button.dataset.sort, numeric = button.dataset.type === "number";
        var th = button.parentNode;
        var dir = th.getAttribute("aria-sort") === "ascending" ? "descending" : "ascending";
        table.querySelectorAll("thead th").forEach(function (t) {
          t.removeAttribute("aria-sort");
        });
        th.setAttribute("aria-sort", dir);
        var sign = dir === "ascending" ? 1 : -1;
        var attr = key === "change" ? "changeRank" : key;
        bodies.sort(function (a, b) {
          var x = a.dataset[attr], y = b.dataset[attr];
          var r = numeric ? Number(x) - Number(y) : (x < y ? -1 : x > y ? 1 : 0);
          if (r === 0 && key !== "name") {
            return a.dataset.name < b.dataset.name ? -1 : a.dataset.name > b.dataset.name ? 1 : 0;
          }
          return sign * r;
        });
        bodies.forEach(function (b) { table.appendChild(b); });
      });
    });
    table.addEventListener("click", function (event) {
      var toggle = event.target.closest("button.toggle");
      if (!toggle) { return; }
      var open = toggle.getAttribute("aria-expanded") !== "true";
      toggle.setAttribute("aria-expanded", String(open));
      toggle.closest("tbody").querySelector("tr.detail").hidden = !open;
    });
    return apply;
  }
  var appliers = {};
  document.querySelectorAll("table.rows").forEach(function (table) {
    appliers[table.id] = setup(table);
  });
  document.querySelectorAll("[data-filter-table]").forEach(function (el) {
    el.addEventListener("click", function () {
      var t = el.dataset.filterTable;
      if (!appliers[t]) { return; }
      if (el.dataset.filterOutcome !== undefined) {
        byId(t + "-outcome").value = el.dataset.filterOutcome;
      }
      if (el.dataset.filterCheck !== undefined) {
        byId(t + "-outcome").value = "";
        byId(t + "-check").value = el.dataset.filterCheck;
      }
      appliers[t]();
      byId(t).scrollIntoView({ block: "start" });
    });
  });
})();
"""
