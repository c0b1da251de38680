"""The pieces of the report page: inline CSS, pictures as ``data:`` URIs, figures, rows of figures and
tables. No scripts and no network: the page is one self-contained file."""

from __future__ import annotations

import base64
import html
import math
from typing import Any

CSS = """
body { font-family: system-ui, sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; margin-bottom: .2em; }
h2 { font-size: 1.2em; border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: .5em 0 1em; font-size: .92em; }
td, th { border: 1px solid #ddd; padding: .25em .6em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.row { display: flex; flex-wrap: wrap; gap: 1em; align-items: flex-start; }
figure { margin: .5em 0; flex: 0 1 auto; min-width: 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; display: block; }
figcaption { font-size: .88em; color: #555; max-width: 40em; }
.note { color: #666; font-size: .9em; } .headline { font-size: 1.15em; margin: .3em 0; }
.worse { color: #a40000; font-weight: 600; } .better { color: #1a6b1a; }
summary { cursor: pointer; font-weight: 600; margin: 1em 0 .3em; }
"""


def data_uri(data: bytes, mime: str) -> str:
    """``data:`` URI of ``data``: the page carries its pictures itself.

    Example:
        >>> data_uri(b"GIF89a", "image/gif")
        'data:image/gif;base64,R0lGODlh'
    """
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def figure(data: bytes, caption: str, mime: str = "image/png", width: int = 0) -> str:
    """One picture with its caption (the caption is also the image's ``alt`` text); ``width`` in CSS
    pixels caps how wide it is drawn (0: its own width, at most the page's).

    Example:
        >>> print(figure(b"GIF89a", "a <gif>", "image/gif").replace("><", ">\\n<"))
        <figure>
        <img src="data:image/gif;base64,R0lGODlh" alt="a &lt;gif&gt;">
        <figcaption>a &lt;gif&gt;</figcaption>
        </figure>
    """
    esc = html.escape(caption)
    style = f' style="max-width: {width}px"' if width else ""
    return f'<figure{style}><img src="{data_uri(data, mime)}" alt="{esc}"><figcaption>{esc}</figcaption></figure>'


def row(*figures: str) -> str:
    """Figures side by side (wrapping onto the next line when the page is too narrow).

    Example:
        >>> row("<figure>a</figure>", "<figure>b</figure>")
        '<div class="row"><figure>a</figure><figure>b</figure></div>'
    """
    return f'<div class="row">{"".join(figures)}</div>'


def format_value(value: Any) -> str:
    """A cell's text: floats to 4 significant digits (scientific when tiny or huge), lists joined.

    Example:
        >>> format_value(0.123456789), format_value(1e-7), format_value([16, 16])
        ('0.1235', '1.000e-07', '16, 16')
    """
    if isinstance(value, float):
        return f"{value:.4g}" if (value == 0 or 1e-3 <= abs(value) < 1e5 or not math.isfinite(value)) \
            else f"{value:.3e}"
    if isinstance(value, (list, tuple)):
        return ", ".join(format_value(v) for v in value)
    return str(value)


def html_table(rows: list[tuple[Any, ...]], header: tuple[str, ...]) -> str:
    """An HTML table, every cell escaped; numbers right-aligned.

    Example:
        >>> html_table([("steps", 3000)], ("name", "value"))
        '<table><tr><th>name</th><th>value</th></tr><tr><td>steps</td><td class="num">3000</td></tr></table>'
    """
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(
            f'<td class="num">{html.escape(format_value(c))}</td>' if isinstance(c, (int, float))
            and not isinstance(c, bool) else f"<td>{html.escape(format_value(c))}</td>" for c in line) + "</tr>"
        for line in rows)
    return f"<table><tr>{head}</tr>{body}</table>"
