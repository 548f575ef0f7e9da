"""MkDocs hook: the site's home page is README.md and its changelog page CHANGELOG.md, with
their links made relative to docs/.

README.md is the project's front page on the forge and on PyPI, so it links to the pages as
``docs/<page>.md`` and to ``CHANGELOG.md``; on the site those pages sit next to the home page.
"""

from __future__ import annotations

import pathlib
import re
from typing import Any

ROOT = pathlib.Path(__file__).parent
#: The site's pages whose markdown is a file at the top of the repository.
FROM_ROOT = {"index.md": ROOT / "README.md", "changelog.md": ROOT / "CHANGELOG.md"}
DOCS_LINK = re.compile(r"\]\(docs/")
CHANGELOG_LINK = re.compile(r"\]\(CHANGELOG\.md")


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """The home page's markdown is the README's; the changelog page's, CHANGELOG.md's."""
    source = FROM_ROOT.get(page.file.src_uri)
    if source is None:
        return markdown
    return CHANGELOG_LINK.sub("](changelog.md", DOCS_LINK.sub("](", source.read_text()))
