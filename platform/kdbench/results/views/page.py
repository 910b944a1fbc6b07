"""The self-contained HTML page of a leaderboard or a view: inline CSS and a sorting script, tables with their
captions, plots as PNG data URIs; no external request."""

from __future__ import annotations

import base64
import html

import pyarrow as pa

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin-bottom: 2em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; vertical-align: top; }
th { background: #f2f2f2; }
td.s { text-align: left; white-space: pre-wrap; max-width: 60em; }
img { max-width: 100%; }
th { cursor: pointer; user-select: none; }
th.asc::after { content: " ▲"; } th.desc::after { content: " ▼"; }
figure { margin: 0 0 2em 0; } figcaption { color: #666; font-size: 0.85em; }
"""
# Click a header to sort by that column (numbers by their leading value: "96.11 ± 1.20" sorts as 96.11;
# empty cells last). Plain DOM, no library: the page stays self-contained and works offline.
_SORT_JS = r"""
document.querySelectorAll("table").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, col) {
    th.addEventListener("click", function () {
      var asc = !th.classList.contains("asc");
      table.querySelectorAll("th").forEach(function (h) { h.classList.remove("asc", "desc"); });
      th.classList.add(asc ? "asc" : "desc");
      var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      function key(row) {
        var text = row.cells[col] ? row.cells[col].textContent.trim() : "";
        var num = parseFloat(text.replace(/[^0-9eE+.\-].*$/, ""));
        return text === "" ? null : (isNaN(num) ? text.toLowerCase() : num);
      }
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        if (x === null || y === null) { return x === y ? 0 : (x === null ? 1 : -1); }
        if (typeof x !== typeof y) { x = String(x); y = String(y); }
        return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1);
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""


def _cell(value: object) -> str:
    if value is None:
        return "<td></td>"
    if isinstance(value, float):
        return f"<td>{value:.4f}</td>"
    if isinstance(value, int):
        return f"<td>{value}</td>"
    if isinstance(value, list):
        value = " → ".join(map(str, value))
    return f'<td class="s">{html.escape(str(value))}</td>'


def _html_table(table: pa.Table) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in table.column_names)
    body = "\n".join("<tr>" + "".join(map(_cell, row.values())) + "</tr>" for row in table.to_pylist())
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"


def _html_image(name: str, png: bytes) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (f'<figure><img alt="{html.escape(name)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(name)}</figcaption></figure>")


def html_page(title: str, tables: dict[str, pa.Table], images: dict[str, bytes],
              captions: dict[str, str] | None = None) -> str:
    """One self-contained page: inline CSS and script (sortable columns), tables with their captions, PNGs
    as data URIs (no external requests)."""
    captions = captions or {}
    parts = [f"<h2>{html.escape(name)}</h2>\n" + (f"<p>{html.escape(captions[name])}</p>\n" if name in captions
                                                   else "") + _html_table(t) for name, t in tables.items()]
    parts += [_html_image(name, png) for name, png in images.items()]
    body = "\n".join(parts)
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n"
            f"<body>\n<h1>{html.escape(title)}</h1>\n{body}\n<script>{_SORT_JS}</script>\n</body>\n</html>\n")
