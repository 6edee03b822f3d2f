"""One structured document, rendered to GitHub-flavoured markdown and to plain HTML.

The report is built once as a list of blocks; both renderers walk the same list, so the
markdown and the HTML can never disagree.  No markdown library is needed.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

# The most columns one table may have: the HTML report's column is 1,200 px wide, and past
# about a dozen columns of "145 [124, 166]" cells a table pushes its right-hand columns off a
# 1,600 px screen.  A wider table is split into parts that repeat its leading key columns.
MAX_COLUMNS = 12


def format_value(v: Any) -> str:
    """How a config value or number reads in the report: ``0.0001``, ``[0.5, 0.999]``, ``—``."""
    if isinstance(v, list):
        return "[" + ", ".join(map(format_value, v)) + "]"
    return "—" if v is None else f"{v:g}" if isinstance(v, float) else str(v)


@dataclass
class Cell:
    text: str
    bold: bool = False


@dataclass
class Table:
    """``rows`` of Cells or of values (shown by :func:`format_value`)."""

    headers: list[str]
    rows: list[list[Any]]
    caption: str | None = None

    def cells(self) -> list[list[Cell]]:
        return [[c if isinstance(c, Cell) else Cell(format_value(c)) for c in r] for r in self.rows]


@dataclass
class Block:
    """Every block but a table: a heading (``kind`` h2, h3), paragraph (p), code (pre), list
    of ``items`` (ul) or figure (``text``: the PNG's path relative to the report folder)."""

    kind: str
    text: str = ""
    items: list[str] = field(default_factory=list)
    caption: str = ""


@dataclass
class Document:
    title: str
    blocks: list[Block | Table] = field(default_factory=list)

    def heading(self, text: str, level: int = 2) -> None:
        self.blocks.append(Block(f"h{level}", text))

    def para(self, text: str) -> None:
        self.blocks.append(Block("p", text))

    def code(self, text: str) -> None:
        self.blocks.append(Block("pre", text))

    def bullets(self, items: list[str]) -> None:
        self.blocks.append(Block("ul", items=items))

    def figure(self, path: str, caption: str) -> None:
        self.blocks.append(Block("figure", path, caption=caption))

    def table(self, headers: list[str], rows: list[list[Any]], caption: str = "") -> None:
        """Add a table; one of more than ``MAX_COLUMNS`` columns becomes several, each
        repeating the first column (the row's name) and captioned "part i of n"."""
        self.blocks += split_table(Table(headers, rows, caption or None))


def split_table(table: Table, keep: int = 1, limit: int = MAX_COLUMNS) -> list[Table]:
    """``table`` as parts of at most ``limit`` columns, each with its first ``keep`` columns."""
    if len(table.headers) <= limit:
        return [table]
    keep = max(1, min(keep, limit - 1))
    width = limit - keep
    rest = range(keep, len(table.headers))
    chunks = [list(rest[i : i + width]) for i in range(0, len(rest), width)]
    parts = []
    for n, cols in enumerate(chunks, 1):
        idx = list(range(keep)) + cols
        part = f"part {n} of {len(chunks)}"
        parts.append(
            Table(
                [table.headers[j] for j in idx],
                [[row[j] for j in idx] for row in table.rows],
                f"{table.caption} ({part})" if table.caption else f"({part})",
            )
        )
    return parts


def _md_cell(c: Cell) -> str:
    # Inside a GFM table a bare pipe ends the cell; newlines end the row.
    t = c.text.replace("|", "\\|").replace("\n", " ")
    return f"**{t}**" if c.bold and t else t


def to_markdown(doc: Document) -> str:
    """Render ``doc`` as GitHub-flavoured markdown."""
    out = [f"# {doc.title}", ""]
    for b in doc.blocks:
        if isinstance(b, Table):
            out += [f"*{b.caption}*", ""] if b.caption else []
            out.append("| " + " | ".join(_md_cell(Cell(h)) for h in b.headers) + " |")
            out.append("|" + "|".join(["---"] * len(b.headers)) + "|")
            out += ["| " + " | ".join(map(_md_cell, row)) + " |" for row in b.cells()]
        elif b.kind in ("h2", "h3"):
            out.append("#" * int(b.kind[1]) + " " + b.text)
        elif b.kind == "p":
            out.append(b.text)
        elif b.kind == "pre":
            out += ["```", b.text.rstrip("\n"), "```"]
        elif b.kind == "ul":
            out += [f"- {item}" for item in b.items]
        else:
            out += [f"![{b.caption}]({b.text})", "", f"*{b.caption}*"]
        out.append("")
    return "\n".join(out).rstrip() + "\n"


_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; max-width: 1200px;
       margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
/* A table wider than the column scrolls inside its own box, never the page. */
.table-wrap { max-width: 100%; overflow-x: auto; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
tr:nth-child(even) td { background: #fafafa; }
code { background: #f6f8fa; font-size: 0.9em; }
pre { background: #f6f8fa; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
figure { margin: 1em 0 2em; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption, caption { font-style: italic; color: #555; font-size: 0.9em; text-align: left; }
"""


def _inline(text: str) -> str:
    """``text`` escaped for HTML, with `code` spans (as markdown writes them) as <code>."""
    parts = escape(text).split("`")
    if len(parts) % 2 == 0:  # an unpaired backtick: no code spans
        return escape(text)
    return "".join(f"<code>{t}</code>" if i % 2 else t for i, t in enumerate(parts))


def to_html(doc: Document, *, images: Path | None = None) -> str:
    """Render ``doc`` as one HTML page.  Figures are relative links, or, read from the folder
    ``images``, inlined as base64 data URIs (then the .html alone is the whole report)."""
    out = ['<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">']
    out += [f"<title>{escape(doc.title)}</title>", f"<style>{_CSS}</style>", "</head>", "<body>"]
    out.append(f"<h1>{escape(doc.title)}</h1>")
    for b in doc.blocks:
        if isinstance(b, Table):
            out.append('<div class="table-wrap"><table>')
            out += [f"<caption>{escape(b.caption)}</caption>"] if b.caption else []
            heads = "".join(f"<th>{escape(h)}</th>" for h in b.headers)
            out.append(f"<thead><tr>{heads}</tr></thead><tbody>")
            for row in b.cells():
                tds = [
                    f"<strong>{escape(c.text)}</strong>" if c.bold else escape(c.text) for c in row
                ]
                out.append("<tr>" + "".join(f"<td>{t}</td>" for t in tds) + "</tr>")
            out.append("</tbody></table></div>")
        elif b.kind == "ul":
            out.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in b.items) + "</ul>")
        elif b.kind == "pre":
            out.append(f"<pre><code>{escape(b.text)}</code></pre>")
        elif b.kind == "figure":
            src = escape(b.text)
            if images is not None:
                data = base64.b64encode((images / b.text).read_bytes()).decode()
                src = f"data:image/png;base64,{data}"
            img = f'<img src="{src}" alt="{escape(b.caption)}">'
            out.append(f"<figure>{img}<figcaption>{escape(b.caption)}</figcaption></figure>")
        elif b.kind == "p":
            out.append(f"<p>{_inline(b.text)}</p>")
        else:  # h2, h3: the kind is the tag
            out.append(f"<{b.kind}>{escape(b.text)}</{b.kind}>")
    out += ["</body>", "</html>"]
    return "\n".join(out) + "\n"
