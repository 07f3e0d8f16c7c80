"""Small pieces the console's SVG drawings share."""

from __future__ import annotations

from markupsafe import escape


def fit(text: str, width: int) -> str:
    """Cut to ``width`` characters with an ellipsis; the full text goes in a <title>."""
    return text if len(text) <= width else text[: width - 1] + "…"


def svg_open(css: str, title_id: str, title: str, width: float, height: float) -> str:
    """The root element, scalable (viewBox) and named for assistive technology."""
    return (
        f'<svg class="{css}" role="img" aria-labelledby="{title_id}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" width="{width:.0f}" height="{height:.0f}" '
        f'xmlns="http://www.w3.org/2000/svg"><title id="{title_id}">{escape(title)}</title>'
    )
