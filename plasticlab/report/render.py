"""Write one document as ``report.md`` (images linked) and a self-contained ``report.html``.

A document is a list of blocks: ``("h1"|"h2"|"p"|"note", text)``, ``("table", header, rows)``,
``("img", filename, caption)``, ``("code", text)`` (preformatted) and ``("verdict", text)`` (a
highlighted line). A table cell is text, a ``Link`` or a list of ``Link``s (relative links, e.g.
to run directories). The HTML embeds each PNG as a base64 data URI, so the file can be mailed or
archived on its own.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Link:
    text: str
    href: str

CSS = (
    "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;margin:1em 0;font-size:13px}"
    "th,td{border:1px solid #ccc;padding:3px 8px;text-align:left}th{background:#f3f3f3}"
    "pre{background:#f6f6f6;padding:.6em 1em;font-size:12px;overflow-x:auto}"
    ".verdict{background:#e8f3ff;border-left:4px solid #1f6feb;padding:.5em 1em}"
    ".note{background:#fff4d6;border-left:4px solid #e0a800;padding:.5em 1em}"
    "img{max-width:100%}figure{margin:1em 0}figcaption{font-size:12px;color:#555}"
)


def _md_cell(cell) -> str:
    if isinstance(cell, Link):
        return f"[{_md_cell(cell.text)}]({cell.href.replace(' ', '%20')})"
    if isinstance(cell, list):
        return ", ".join(_md_cell(c) for c in cell)
    return str(cell).replace("|", "\\|").replace("\n", " ")


def _html_cell(cell) -> str:
    if isinstance(cell, Link):
        return f'<a href="{html.escape(cell.href)}">{html.escape(cell.text)}</a>'
    if isinstance(cell, list):
        return ", ".join(_html_cell(c) for c in cell)
    return html.escape(str(cell))


def markdown(blocks: list[tuple]) -> str:
    out = []
    for b in blocks:
        kind = b[0]
        if kind == "h1":
            out.append(f"# {b[1]}\n")
        elif kind == "h2":
            out.append(f"## {b[1]}\n")
        elif kind == "p":
            out.append(f"{b[1]}\n")
        elif kind == "note":
            out.append(f"> **{b[1]}**\n")
        elif kind == "verdict":
            out.append(f"> {b[1]}\n")
        elif kind == "code":
            out.append(f"```\n{b[1].rstrip()}\n```\n")
        elif kind == "table":
            header, rows = b[1], b[2]
            lines = ["| " + " | ".join(_md_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
            out.append("\n".join(lines) + "\n")
        elif kind == "img":
            out.append(f"![{b[2]}]({b[1]})\n")
    return "\n".join(out)


def to_html(blocks: list[tuple], folder: Path, title: str) -> str:
    """HTML with every ``img`` block read from ``folder`` and embedded as base64."""
    out = [
        "<!DOCTYPE html>",
        '<html><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>",
    ]
    for b in blocks:
        kind = b[0]
        if kind in ("h1", "h2"):
            out.append(f"<{kind}>{html.escape(b[1])}</{kind}>")
        elif kind == "p":
            out.append(f"<p>{html.escape(b[1])}</p>")
        elif kind == "note":
            out.append(f'<p class="note"><b>{html.escape(b[1])}</b></p>')
        elif kind == "verdict":
            out.append(f'<p class="verdict">{html.escape(b[1])}</p>')
        elif kind == "code":
            out.append(f"<pre>{html.escape(b[1].rstrip())}</pre>")
        elif kind == "table":
            head = "".join(f"<th>{_html_cell(h)}</th>" for h in b[1])
            body = "".join("<tr>" + "".join(f"<td>{_html_cell(c)}</td>" for c in row) + "</tr>" for row in b[2])
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif kind == "img":
            data = base64.b64encode((folder / b[1]).read_bytes()).decode("ascii")
            cap = html.escape(b[2])
            img = f'<img alt="{cap}" src="data:image/png;base64,{data}">'
            out.append(f"<figure>{img}<figcaption>{cap}</figcaption></figure>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"
