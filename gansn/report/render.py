"""One structured document, rendered to GitHub-flavoured markdown and to plain HTML.

The report is built once as a list of blocks; both renderers walk the same list, so the
markdown and the HTML can never disagree.  No markdown library is needed.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Cell:
    text: str
    bold: bool = False


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Para:
    text: str


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Code:
    text: str


@dataclass
class Table:
    headers: list[str]
    rows: list[list[Cell | str]]
    caption: str | None = None


@dataclass
class Figure:
    path: str  # relative to the report folder
    caption: str


Block = Heading | Para | Bullets | Code | Table | Figure


@dataclass
class Document:
    title: str
    blocks: list[Block] = field(default_factory=list)

    def add(self, *blocks: Block) -> None:
        self.blocks.extend(blocks)


def _cells(row: list[Cell | str]) -> list[Cell]:
    return [c if isinstance(c, Cell) else Cell(str(c)) for c in row]


def _md_cell(c: Cell) -> str:
    # Inside a GFM table a bare pipe ends the cell; newlines end the row.
    t = c.text.replace("|", "\\|").replace("\n", " ")
    return f"**{t}**" if c.bold and t else t


def to_markdown(doc: Document) -> str:
    """Render ``doc`` as GitHub-flavoured markdown."""
    out = [f"# {doc.title}", ""]
    for b in doc.blocks:
        if isinstance(b, Heading):
            out.append("#" * max(1, min(6, b.level)) + " " + b.text)
        elif isinstance(b, Para):
            out.append(b.text)
        elif isinstance(b, Bullets):
            out += [f"- {item}" for item in b.items]
        elif isinstance(b, Code):
            out += ["```", b.text.rstrip("\n"), "```"]
        elif isinstance(b, Table):
            out += [f"*{b.caption}*", ""] if b.caption else []
            out.append("| " + " | ".join(_md_cell(Cell(h)) for h in b.headers) + " |")
            out.append("|" + "|".join(["---"] * len(b.headers)) + "|")
            out += ["| " + " | ".join(map(_md_cell, _cells(r))) + " |" for r in b.rows]
        elif isinstance(b, Figure):
            out += [f"![{b.caption}]({b.path})", "", f"*{b.caption}*"]
        out.append("")
    return "\n".join(out).rstrip() + "\n"


_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; max-width: 1200px;
       margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
tr:nth-child(even) td { background: #fafafa; }
pre { background: #f6f8fa; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
figure { margin: 1em 0 2em; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption, caption { font-style: italic; color: #555; font-size: 0.9em; text-align: left; }
"""


def to_html(doc: Document, *, root: Path | None = None, embed_images: bool = False) -> str:
    """Render ``doc`` as one HTML page; images are relative links, or inlined as base64
    data URIs with ``embed_images`` (then the .html alone is the whole report)."""
    e = html.escape
    out = ['<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">']
    out += [f"<title>{e(doc.title)}</title>", f"<style>{_CSS}</style>", "</head>", "<body>"]
    out.append(f"<h1>{e(doc.title)}</h1>")
    for b in doc.blocks:
        if isinstance(b, Heading):
            lvl = max(1, min(6, b.level))
            out.append(f"<h{lvl}>{e(b.text)}</h{lvl}>")
        elif isinstance(b, Para):
            out.append(f"<p>{e(b.text)}</p>")
        elif isinstance(b, Bullets):
            out.append("<ul>" + "".join(f"<li>{e(i)}</li>" for i in b.items) + "</ul>")
        elif isinstance(b, Code):
            out.append(f"<pre><code>{e(b.text)}</code></pre>")
        elif isinstance(b, Table):
            out += ["<table>"] + ([f"<caption>{e(b.caption)}</caption>"] if b.caption else [])
            heads = "".join(f"<th>{e(h)}</th>" for h in b.headers)
            out.append(f"<thead><tr>{heads}</tr></thead><tbody>")
            for row in b.rows:
                tds = [
                    f"<strong>{e(c.text)}</strong>" if c.bold else e(c.text) for c in _cells(row)
                ]
                out.append("<tr>" + "".join(f"<td>{t}</td>" for t in tds) + "</tr>")
            out.append("</tbody></table>")
        elif isinstance(b, Figure):
            src = e(b.path, quote=True)
            if embed_images and root is not None and (root / b.path).is_file():
                src = (
                    "data:image/png;base64,"
                    + base64.b64encode((root / b.path).read_bytes()).decode()
                )
            img = f'<img src="{src}" alt="{e(b.caption, quote=True)}">'
            out.append(f"<figure>{img}<figcaption>{e(b.caption)}</figcaption></figure>")
    out += ["</body>", "</html>"]
    return "\n".join(out) + "\n"
