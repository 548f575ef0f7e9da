"""Text from outside safestate (an exception's message) shown in Streamlit's Markdown as itself.

Streamlit renders an alert's body as Markdown, where an exception's message could draw a link,
an image fetched from anywhere, a heading or a colour. In an inline code span nothing is
interpreted (Streamlit's emoji, icons and LaTeX included); it must be on one line, since a
blank line would end the span's paragraph before the span is read.
"""

from __future__ import annotations

import re

_TICKS = re.compile(r"`+")


def literal(text: str) -> str:
    """``text`` on one line as an inline code span: Markdown that shows it as it is.

    The fence is one backtick longer than the longest run in ``text`` (CommonMark's rule), and
    padded with a space where ``text`` starts or ends with a backtick.
    """
    line = " ".join(text.split())
    fence = "`" * (max((len(run) for run in _TICKS.findall(line)), default=0) + 1)
    pad = " " if line.startswith("`") or line.endswith("`") else ""
    return f"{fence}{pad}{line}{pad}{fence}"
