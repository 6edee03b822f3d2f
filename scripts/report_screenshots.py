#!/usr/bin/env python
"""Screenshots of reports in headless Chromium, and a check that their tables fit the page.

    python scripts/report_screenshots.py                      # every report under docs/showcase
    python scripts/report_screenshots.py docs/showcase/pacgan --full --out /tmp/shots

For each ``report.html`` (a folder is searched for them, ``logs/`` folders skipped) it writes
``<out>/<name>.png``, the first screen at ``--width`` x ``--height`` px (``--full``: a window
tall enough for the whole page, up to ``--max-height``), and measures the page as laid out at
that width: how wide the page is, and per table whether it is wider than the space it has
(then part of it is off screen or behind a scroll bar).  Exit 1 when a table does not fit.

Needs a Chromium (``apt-get install chromium``; ``--chromium PATH`` for another one).  It
reads the reports and writes only under ``--out``.
"""

from __future__ import annotations

import argparse
import html
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from _chromium import FLAGS

ROOT = Path(__file__).resolve().parents[1]
# Run in the page after layout: the page's width and, per table, its width beside the width
# its container gives it.  The result is written into the DOM, which --dump-dom prints.
PROBE = """<script>
window.addEventListener("load", () => {
  const out = {page: document.documentElement.scrollWidth, view: window.innerWidth,
               height: document.documentElement.scrollHeight, tables: []};
  document.querySelectorAll("table").forEach((t, i) => {
    const box = t.parentElement, cs = getComputedStyle(box);
    const room = box.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight);
    const cap = t.querySelector("caption");
    out.tables.push({index: i, width: Math.ceil(t.scrollWidth), room: Math.floor(room),
                     right: Math.ceil(t.getBoundingClientRect().right),
                     columns: t.rows.length ? t.rows[0].cells.length : 0,
                     caption: cap ? cap.textContent.slice(0, 60) : ""});
  });
  const pre = document.createElement("pre");
  pre.id = "layout-probe";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def find_reports(paths: list[Path]) -> list[Path]:
    """``report.html`` files: given ones, and those under given folders (not under logs/)."""
    found = []
    for p in paths:
        if p.is_file():
            found.append(p)
        else:
            found += [h for h in sorted(p.rglob("report.html")) if "logs" not in h.parts]
    return found


def chromium(binary: str, args: list[str], user_dir: Path, timeout: float) -> str:
    cmd = [binary, *FLAGS, f"--user-data-dir={user_dir}", *args]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} ... exited {res.returncode}: {res.stderr[-500:]}")
    return res.stdout


def measure(binary: str, report: Path, width: int, height: int, user_dir: Path) -> dict:
    """The layout of ``report`` at ``width`` px: page width and every table's width and room."""
    text = report.read_text()
    base = f'<base href="{html.escape(report.resolve().parent.as_uri())}/">'
    text = re.sub(r"<head>", "<head>" + base, text, count=1)
    text = text.replace("</body>", PROBE + "</body>", 1)
    with tempfile.TemporaryDirectory() as tmp:
        probe = Path(tmp) / "probe.html"
        probe.write_text(text)
        dom = chromium(
            binary,
            [f"--window-size={width},{height}", "--dump-dom", probe.as_uri()],
            user_dir,
            timeout=120,
        )
    m = re.search(r'<pre id="layout-probe">(.*?)</pre>', dom, re.S)
    if m is None:
        raise RuntimeError(f"{report}: the layout probe did not run")
    return json.loads(html.unescape(m.group(1)))


def shot_name(report: Path) -> str:
    try:
        rel = report.resolve().parent.relative_to(ROOT / "docs" / "showcase")
    except ValueError:
        rel = Path(report.resolve().parent.name)
    return "_".join(rel.parts) or "report"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("paths", nargs="*", type=Path, default=[ROOT / "docs" / "showcase"])
    p.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "report_shots")
    p.add_argument("--width", type=int, default=1600, help="window width, px")
    p.add_argument("--height", type=int, default=1000, help="window height, px")
    p.add_argument("--full", action="store_true", help="a window as tall as the page")
    p.add_argument("--max-height", type=int, default=16000, help="cap of --full, px")
    p.add_argument("--no-shots", action="store_true", help="only measure the tables")
    p.add_argument("--chromium", default=shutil.which("chromium") or "chromium")
    args = p.parse_args(argv)

    reports = find_reports(args.paths)
    if not reports:
        print("no report.html found", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    bad = 0
    with tempfile.TemporaryDirectory() as user_dir:
        for report in reports:
            name = shot_name(report)
            lay = measure(args.chromium, report, args.width, args.height, Path(user_dir))
            wide = [t for t in lay["tables"] if t["width"] > t["room"] or t["right"] > lay["view"]]
            print(
                f"{name}: page {lay['page']} px wide in a {lay['view']} px window, "
                f"{lay['height']} px tall; {len(lay['tables'])} tables, "
                f"widest {max((t['width'] for t in lay['tables']), default=0)} px, "
                f"most columns {max((t['columns'] for t in lay['tables']), default=0)}"
            )
            for t in wide:
                what = f"{t['columns']} columns" + (f", {t['caption']}" if t["caption"] else "")
                print(
                    f"  table {t['index']} ({what}): {t['width']} px in {t['room']} px of room, "
                    f"right edge at {t['right']} px"
                )
            bad += bool(wide)
            if args.no_shots:
                continue
            height = min(lay["height"] + 40, args.max_height) if args.full else args.height
            png = args.out / f"{name}.png"
            chromium(
                args.chromium,
                [
                    f"--window-size={args.width},{height}",
                    f"--screenshot={png}",
                    report.resolve().as_uri(),
                ],
                Path(user_dir),
                timeout=180,
            )
            print(f"  screenshot: {png}")
    print(f"{bad} of {len(reports)} reports have a table wider than its room")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
