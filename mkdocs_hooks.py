"""MkDocs hook: the site's home page is README.md, with its links made relative to docs/.

README.md is the project's front page on the forge and on PyPI, so it links to the pages as
``docs/<page>.md``; on the site those pages sit next to the home page.
"""

from __future__ import annotations

import pathlib
import re
from typing import Any

README = pathlib.Path(__file__).parent / "README.md"
DOCS_LINK = re.compile(r"\]\(docs/")


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """The home page's markdown is the README's."""
    if page.file.src_uri != "index.md":
        return markdown
    return DOCS_LINK.sub("](", README.read_text())
