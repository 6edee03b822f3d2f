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


def _cell(c: Cell | str) -> Cell:
    return c if isinstance(c, Cell) else Cell(str(c))


def _md_escape(text: str) -> str:
    # Inside a GFM table a bare pipe ends the cell; newlines end the row.
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(doc: Document) -> str:
    """Render ``doc`` as GitHub-flavoured markdown."""
    out = [f"# {doc.title}", ""]
    for b in doc.blocks:
        if isinstance(b, Heading):
            out += ["#" * max(1, min(6, b.level)) + " " + b.text, ""]
        elif isinstance(b, Para):
            out += [b.text, ""]
        elif isinstance(b, Bullets):
            out += [f"- {item}" for item in b.items] + [""]
        elif isinstance(b, Code):
            out += ["```", b.text.rstrip("\n"), "```", ""]
        elif isinstance(b, Table):
            if b.caption:
                out += [f"*{b.caption}*", ""]
            out.append("| " + " | ".join(_md_escape(h) for h in b.headers) + " |")
            out.append("|" + "|".join(["---"] * len(b.headers)) + "|")
            for row in b.rows:
                cells = []
                for c in map(_cell, row):
                    t = _md_escape(c.text)
                    cells.append(f"**{t}**" if c.bold and t else t)
                out.append("| " + " | ".join(cells) + " |")
            out.append("")
        elif isinstance(b, Figure):
            out += [f"![{b.caption}]({b.path})", "", f"*{b.caption}*", ""]
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


def _img_src(path: str, root: Path | None, embed: bool) -> str:
    if embed and root is not None and (root / path).is_file():
        data = base64.b64encode((root / path).read_bytes()).decode("ascii")
        return f"data:image/png;base64,{data}"
    return html.escape(path, quote=True)


def to_html(doc: Document, *, root: Path | None = None, embed_images: bool = False) -> str:
    """Render ``doc`` as one HTML page; images are relative links, or inlined as base64
    data URIs with ``embed_images`` (then the .html alone is the whole report)."""
    e = html.escape
    out = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{e(doc.title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        f"<h1>{e(doc.title)}</h1>",
    ]
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
            out.append("<table>")
            if b.caption:
                out.append(f"<caption>{e(b.caption)}</caption>")
            out.append(
                "<thead><tr>"
                + "".join(f"<th>{e(h)}</th>" for h in b.headers)
                + "</tr></thead><tbody>"
            )
            for row in b.rows:
                tds = []
                for c in map(_cell, row):
                    t = e(c.text)
                    tds.append(f"<td><strong>{t}</strong></td>" if c.bold else f"<td>{t}</td>")
                out.append("<tr>" + "".join(tds) + "</tr>")
            out.append("</tbody></table>")
        elif isinstance(b, Figure):
            out.append(
                f'<figure><img src="{_img_src(b.path, root, embed_images)}" '
                f'alt="{e(b.caption, quote=True)}"><figcaption>{e(b.caption)}'
                "</figcaption></figure>"
            )
    out += ["</body>", "</html>"]
    return "\n".join(out) + "\n"
