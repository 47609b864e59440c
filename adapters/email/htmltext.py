"""HTML mail bodies to plain text, with the standard library's ``html.parser``.

Block elements become line breaks, ``<blockquote>`` content is prefixed with ``> `` (so quoted
history looks the same as in a text/plain part and ``commands.split_reply`` can strip it), and
the content of ``script``, ``style``, ``head``, ``title`` and ``template`` is dropped. Links keep
their text only.

``html.parser`` in Python 3.11.7 is quadratic on some input (160 KB of ``<a<a<a…`` took 35 s,
unclosed ``<!--`` runs 5 s for 80 KB) and raises ``AssertionError`` on some declarations, so the
markup is first made tame in linear time: comments and the raw text of ``script``/``style`` are
cut out, a ``<`` that does not open a complete ``<…>`` is escaped, and declarations, marked
sections and processing instructions are dropped. The parser then only sees complete tags,
entities and text.
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

__all__ = ["html_to_text"]

_SKIP = frozenset({"script", "style", "head", "title", "template", "xml"})
_BLOCK = frozenset(
    {
        "address", "article", "aside", "center", "dd", "div", "dl", "dt", "fieldset",
        "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header",
        "hr", "li", "main", "nav", "ol", "p", "pre", "section", "table", "tbody", "td", "tfoot",
        "th", "thead", "tr", "ul",
    }
)  # fmt: skip
_VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "wbr"}
)


class _TextBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[tuple[int, str]] = []
        self._words: list[str] = []
        self._has_text = False  # tracked, not recomputed: a line can hold 100 000 words
        self._line_level = 0
        self._quote = 0
        self._skip = 0
        self._pre = 0

    def _break(self, *, hard: bool = False) -> None:
        joined = "".join(self._words)
        text = joined.rstrip() if self._pre else joined.strip()
        if text or hard:
            self.lines.append((self._line_level if text else self._quote, text))
        self._words = []
        self._has_text = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self._skip += 1
        elif tag == "body":
            self._skip = 0  # an unclosed <head> ends where the body starts
        elif tag == "br":
            self._break(hard=True)
        elif tag == "blockquote":
            self._break()
            self._quote += 1
        elif tag in _BLOCK:
            self._break()
            if tag == "pre":
                self._pre += 1
            elif tag == "li":
                self._words.append("- ")
                self._line_level = self._quote

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _VOID or tag not in _SKIP:
            self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self._skip = max(0, self._skip - 1)
        elif tag == "blockquote":
            self._break()
            self._quote = max(0, self._quote - 1)
        elif tag in _BLOCK:
            self._break()
            if tag == "pre":
                self._pre = max(0, self._pre - 1)
            elif tag == "p":
                self._break(hard=True)  # a blank line between paragraphs

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        data = data.replace("\xa0", " ")
        if self._pre:
            first, *rest = data.split("\n")
            self._add(first)
            for piece in rest:
                self._break(hard=True)
                self._add(piece)
            return
        data = re.sub(r"\s+", " ", data)
        if not self._has_text:
            data = data.lstrip()
        self._add(data)

    def _add(self, text: str) -> None:
        if not text:
            return
        if not self._has_text:
            self._line_level = self._quote
        self._words.append(text)
        self._has_text = self._has_text or not text.isspace()

    def text(self) -> str:
        self._break()
        out: list[str] = []
        for level, line in self.lines:
            prefix = "> " * level
            rendered = (prefix + line).rstrip() if line else prefix.rstrip()
            if not rendered.strip("> ") and out and not out[-1].strip("> "):
                continue  # one blank line is enough
            out.append(rendered)
        return "\n".join(out).strip("\n")


_RAW_OR_COMMENT = re.compile(r"<!--|<(script|style)\b")
_STRAY_LT = re.compile(r"<(?![^<>]*>)")  # each lookahead stops at the next < or >: linear
_DECLARATION = re.compile(r"<[!?][^<>]*>")
_TAG = re.compile(r"<[^<>]*>")


def _tame(markup: str) -> str:
    """Markup on which html.parser runs in linear time and cannot raise (see module docstring)."""
    lower = markup.lower()
    kept: list[str] = []
    pos = 0
    while (found := _RAW_OR_COMMENT.search(lower, pos)) is not None:
        kept.append(markup[pos : found.start()])
        if found.group(1) is None:  # a comment, to "-->" or to the end
            end = lower.find("-->", found.end())
            pos = len(markup) if end < 0 else end + 3
        else:  # script or style text, to its end tag or to the end
            end = lower.find("</" + found.group(1), found.end())
            close = lower.find(">", end) if end >= 0 else -1
            pos = len(markup) if close < 0 else close + 1
    kept.append(markup[pos:])
    tamed = _STRAY_LT.sub("&lt;", "".join(kept))
    return _DECLARATION.sub("", tamed)


def html_to_text(markup: str) -> str:
    """Readable text of an HTML body; never raises."""
    tamed = _tame(markup)
    builder = _TextBuilder()
    try:
        builder.feed(tamed)
        builder.close()
    except AssertionError:  # not seen after _tame; kept so a parser change cannot crash us
        return html.unescape(_TAG.sub(" ", tamed)).strip()
    return builder.text()
