"""Every link a Markdown viewer would render in a text, as the viewer would resolve it.

``verify`` must see what a reader can click, not what a regular expression guesses: inline and
reference links and images with any scheme in any case (``HTTPS://``, ``javascript:``, ``file:``,
``data:``), protocol-relative ``//host`` links, ``<scheme:…>`` autolinks, bare ``http(s)://``,
``www.`` and e-mail addresses (as GitHub links them), and ``href``/``src`` in raw HTML. Text in code
spans and code blocks is never a link. The parser is markdown-it (CommonMark, with linkify), told
to keep every destination as written: its own safety filter would hide ``javascript:`` links from
the check, not from every viewer.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from markdown_it import MarkdownIt
from markdown_it.token import Token

_HTML_URL = re.compile(
    r"""\b(?:href|src|srcset|action|formaction|poster|data)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))""",
    re.IGNORECASE,
)
_SCHEME_OR_WWW = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|//|www\.)", re.IGNORECASE)
_WWW = re.compile(r"(?<![\w.@/:-])www\.[a-z0-9_-]+(?:\.[a-z0-9_-]+)*[^\s<]*", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class RenderedLink:
    line: int  # 1-based, in the text given
    url: str  # the destination as a viewer resolves it (``www.x`` -> ``http://www.x``)
    written: str  # as the text has it


class _AsWritten(MarkdownIt):
    """CommonMark with linkify, keeping every destination as written (no filter, no re-encoding)."""

    def __init__(self) -> None:
        super().__init__("commonmark", {"linkify": True, "html": True})
        self.enable(["linkify", "table", "strikethrough"])

    def validateLink(self, url: str) -> bool:
        return True

    def normalizeLink(self, url: str) -> str:
        return url

    def normalizeLinkText(self, link: str) -> str:
        return link


_MD = _AsWritten()


def rendered_links(text: str) -> list[RenderedLink]:
    """``RenderedLink`` for every link and image source a viewer renders in Markdown ``text``."""
    lines = text.splitlines()
    found: list[RenderedLink] = []
    for block in _MD.parse(text):
        span = block.map or [0, len(lines)]
        for url, written in _links_of(block):
            found.append(RenderedLink(_line_of(lines, span, written or url), url, written or url))
    return found


def _links_of(block: Token) -> Iterator[tuple[str, str]]:
    if block.type in ("html_block", "html_inline"):
        yield from _html_urls(block.content)
    children = block.children or []
    depth = 0  # inside a link's text nothing more is linked
    for index, token in enumerate(children):
        depth += {"link_open": 1, "link_close": -1}.get(token.type, 0)
        if token.type == "text" and depth == 0:
            yield from _www_links(token.content)
        if token.type == "link_open":
            url = str(token.attrs.get("href", ""))
            written = children[index + 1].content if index + 1 < len(children) else url
            if token.markup == "linkify" and not (_SCHEME_OR_WWW.match(written) or "@" in written):
                continue  # a bare "example.org": GitHub and CommonMark viewers leave it as text
            yield url, url if token.markup != "linkify" else written
        elif token.type == "image":
            url = str(token.attrs.get("src", ""))
            yield url, url
        elif token.type == "html_inline":
            yield from _html_urls(token.content)


def _www_links(text: str) -> Iterator[tuple[str, str]]:
    """GitHub's extended ``www.`` autolinks that linkify leaves as text (any top-level domain)."""
    for match in _WWW.finditer(text):
        written = match.group(0).rstrip("?!.,:*_~'\"")
        while written.endswith(")") and written.count(")") > written.count("("):
            written = written[:-1]
        yield "http://" + written, written


def _html_urls(html: str) -> Iterator[tuple[str, str]]:
    for match in _HTML_URL.finditer(html):
        url = next(group for group in match.groups() if group is not None)
        yield url, url


def _line_of(lines: list[str], span: list[int], needle: str) -> int:
    """The first line of the block holding ``needle`` (its first line if none does)."""
    for number in range(span[0], min(span[1], len(lines))):
        if needle in lines[number]:
            return number + 1
    return span[0] + 1
