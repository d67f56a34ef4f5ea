"""Write one document as ``report.md`` (images linked) and a self-contained ``report.html``.

A document is a list of blocks: ``("h1"|"h2"|"p"|"note", text)``, ``("table", header, rows)``
and ``("img", filename, caption)``. The HTML embeds each PNG as a base64 data URI, so the file
can be mailed or archived on its own.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

CSS = (
    "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;margin:1em 0;font-size:13px}"
    "th,td{border:1px solid #ccc;padding:3px 8px;text-align:left}th{background:#f3f3f3}"
    ".note{background:#fff4d6;border-left:4px solid #e0a800;padding:.5em 1em}"
    "img{max-width:100%}figure{margin:1em 0}figcaption{font-size:12px;color:#555}"
)


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


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
        elif kind == "table":
            head = "".join(f"<th>{html.escape(str(h))}</th>" for h in b[1])
            body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in b[2])
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif kind == "img":
            data = base64.b64encode((folder / b[1]).read_bytes()).decode("ascii")
            cap = html.escape(b[2])
            img = f'<img alt="{cap}" src="data:image/png;base64,{data}">'
            out.append(f"<figure>{img}<figcaption>{cap}</figcaption></figure>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"
