"""``wbtool.Html``: a web page logged to a run (a file in ``media/html/``) or
added to an artifact.

It is made of HTML text, the path of an ``.html`` file or an open file. With
``inject=True`` (the default, as in the W&B SDK) the page's head gets
``<meta charset="utf-8">`` and ``<base target="_blank">``, so the page reads
as UTF-8 and its links open outside the frame that shows it; nothing is
fetched from the network.
"""

from __future__ import annotations

import os
from typing import Any

from wbtool.flags import flag
from wbtool.media.files import FileMedia, read_source

INJECTED = '<meta charset="utf-8"><base target="_blank">'


class Html(FileMedia):
    """A web page, as ``wandb.Html``: ``Html("<h1>Results</h1>")`` or ``Html("page.html")``."""

    _log_type = "html-file"
    _folder = "html"
    _sequence_type = "html"

    def __init__(self, data: Any, inject: bool = True) -> None:
        inject = flag(inject, "inject")
        if isinstance(data, str) and not _is_path(data):
            text = data
        else:
            source = read_source(data, "Html", "HTML")
            if source is None:
                raise ValueError(f"wbtool.Html: cannot make a page of a {type(data).__name__} "
                                 "(give HTML text, the path of an .html file or an open file)")
            raw, name = source
            try:
                text = raw.decode("utf-8-sig")
            except UnicodeDecodeError as e:
                raise ValueError(f"wbtool.Html: {name or 'the open file'} is not UTF-8 text: "
                                 f"{e}") from None
        self.html = inject_head(text) if inject else text
        self._bytes = self.html.encode("utf-8", "replace")
        self.format = "html"

    def _restore(self, meta: dict[str, Any]) -> None:
        self.html = self._bytes.decode("utf-8", "replace")

    def __repr__(self) -> str:
        return f"<Html {len(self._bytes)} bytes>"


def _is_path(text: str) -> bool:
    """Whether a string names an HTML file rather than holding HTML: it ends
    in .html or .htm and holds no markup."""
    return "<" not in text and os.path.splitext(text)[1].lower() in (".html", ".htm")


def inject_head(html: str) -> str:
    """The page with :data:`INJECTED` first in its head (a head made if it has none)."""
    import re

    head = re.search(r"<head(?:\s[^>]*)?>", html, re.IGNORECASE)
    if head is not None:
        return html[:head.end()] + INJECTED + html[head.end():]
    top = re.search(r"<html(?:\s[^>]*)?>", html, re.IGNORECASE)
    if top is not None:
        return html[:top.end()] + "<head>" + INJECTED + "</head>" + html[top.end():]
    return INJECTED + html
