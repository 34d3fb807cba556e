"""The HTML page every report builds, and the PNG figures it shows beside it in the report folder."""

from __future__ import annotations

import html
import io
import math
import os
import re
from pathlib import Path
from typing import Any, Callable, Sequence

from contract.runfolder import safe_name as runfolder_safe_name
from contract.runfolder import atomic_write_bytes

from .. import plots

REPORT_HTML = "report.html"

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; font-size: 20px;
       line-height: 1.5; color: #1a1a1a; max-width: 1500px; margin: 0 auto; padding: 24px 32px; }
h1 { font-size: 2.1em; margin-bottom: 0.2em; }
h2 { font-size: 1.55em; margin-top: 1.8em; border-bottom: 3px solid #0072B2; padding-bottom: 0.15em; }
.sub { color: #555; font-size: 1.05em; margin-top: 0; }
table { border-collapse: collapse; margin: 0.8em 0 1.2em; font-size: 0.95em; }
th, td { border: 1px solid #c8c8c8; padding: 6px 14px; text-align: left; vertical-align: top; }
th { background: #eef3f8; }
table.summary th { width: 16em; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.yes { color: #006b3c; font-weight: bold; } .no { color: #B00020; font-weight: bold; }
figure { margin: 1em 0 2em; } figure img { width: 100%; height: auto; border: 1px solid #ddd; }
figcaption, .explain { font-size: 0.95em; color: #333; background: #f6f8fa; padding: 10px 16px;
                       border-left: 5px solid #0072B2; margin-top: 0.5em; }
ul.verdict li { margin-bottom: 0.4em; }
.note { color: #8a5a00; }
"""


class FigureWriter:
    """Save figures as PNGs in the report folder, atomically, in the report's style."""

    def __init__(self, out: Path, on_step: Callable[[str], None]):
        self.out, self.on_step, self.figures = out, on_step, []

    def save(self, name: str, make: Callable[..., Any], *args: Any, **kwargs: Any) -> str:
        self.on_step(f"plotting {name}")
        with plots.style():
            fig = make(*args, **kwargs)
            buf = io.BytesIO()
            fig.savefig(buf, format="png", facecolor="white")
        readable(atomic_write_bytes(self.out / name, buf.getvalue()))
        self.figures.append(name)
        return name


def readable(path: Path) -> Path:
    """Give a written file the umask's usual mode: temp files are 0600, a report is meant to be shared."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)
    return path


def remove_stale(out: Path, keep: Sequence[str]) -> None:
    """Delete PNGs an earlier report.html in this folder showed and this one does not."""
    old = out / REPORT_HTML
    if not old.is_file():
        return
    try:
        text = old.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return
    for name in set(re.findall(r'src="([A-Za-z0-9._-]+\.png)"', text)) - set(keep):
        try:
            (out / name).unlink()
        except OSError:
            pass


class Page:
    """An HTML page: a title, a summary table, then sections of text, tables and figures."""

    def __init__(self, title: str, subtitle: str = ""):
        self.title, self.subtitle = title, subtitle
        self.summary: list[tuple[str, str]] = []
        self.blocks: list[str] = []
        self.notes: list[str] = []

    def section(self, title: str, text: str = "") -> None:
        self.blocks.append(f"<h2>{_e(title)}</h2>")
        if text:
            self.blocks.append(f'<p class="explain">{_e(text)}</p>')

    def figure(self, src: str, title: str, text: str) -> None:
        self.blocks.append(f"<h2>{_e(title)}</h2>\n<figure><img src=\"{_e(src)}\" alt=\"{_e(title)}\">"
                           f"<figcaption>{_e(text)}</figcaption></figure>")

    def table(self, header: Sequence[str], rows: Sequence[Sequence[Any]], numeric: Sequence[int] = ()) -> None:
        head = "".join(f"<th>{_e(h)}</th>" for h in header)
        body = []
        for row in rows:
            cells = []
            for i, cell in enumerate(row):
                if isinstance(cell, bool):
                    cells.append(f'<td class="{"yes" if cell else "no"}">{"yes" if cell else "no"}</td>')
                else:
                    cls = ' class="num"' if i in numeric else ""
                    cells.append(f"<td{cls}>{_e(cell)}</td>")
            body.append("<tr>" + "".join(cells) + "</tr>")
        self.blocks.append(f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>")

    def bullets(self, lines: Sequence[str], cls: str = "") -> None:
        items = "".join(f"<li>{_e(line)}</li>" for line in lines)
        self.blocks.append(f'<ul class="{cls}">{items}</ul>')

    def note(self, text: str) -> None:
        self.notes.append(text)
        self.blocks.append(f'<p class="note">Note: {_e(text)}</p>')

    def render(self) -> str:
        rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in self.summary)
        return (f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
                f"<title>{_e(self.title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
                f"<h1>{_e(self.title)}</h1>\n<p class=\"sub\">{_e(self.subtitle)}</p>\n"
                f"<h2>Summary</h2>\n<table class=\"summary\">{rows}</table>\n"
                + "\n".join(self.blocks) + "\n</body>\n</html>\n")


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def safe_name(name: str) -> str:
    """Return `name` as one plain file name (the run folder's rule), for a PNG named after a run."""
    return runfolder_safe_name(name, "run")


def pct(share: float | None) -> str:
    """Format a share (0..1) as a percentage, or n/a."""
    return "n/a" if share is None else f"{100 * share:.1f} %"


def fmt(value: Any, digits: int = 2) -> str:
    """Format a number for a table cell: floats to `digits` places, missing or non-finite as n/a."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)
