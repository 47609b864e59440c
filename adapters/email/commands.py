"""A reply's own words: quoted history and signatures removed, then an optional command.

``split_reply`` keeps what the participant wrote and drops what their client quoted:

- ``>``-quoted lines wherever they are (top-, bottom- and inline-posted replies), with the
  attribution line above them: ``On … wrote:`` (Gmail, possibly wrapped over three lines,
  Apple Mail, Thunderbird), ``… написал(а):`` / ``… пишет:``, Gmail-ru and Yandex
  ``<date>, Name <addr>:``, Mail.ru ``<date> от Name <addr>:``;
- everything from an unquoted history block on: ``-----Original Message-----``,
  ``-----Исходное сообщение-----``, an Outlook ``From:/Sent:/Subject:`` (``От:/Отправлено:/Тема:``)
  header block, or an attribution line followed by unquoted text;
- a signature: ``-- ``, phone and web-mail footers (``Sent from my iPhone``, ``Отправлено с
  iPhone``, ``Отправлено из мобильной Почты Mail.ru`` …), and a closing such as ``Best regards,``
  / ``С уважением,`` when only a few short lines follow it. Anything less certain stays.

The first remaining non-empty line may be a command (case-insensitive): ``ACCEPT``, ``DECLINE
<reason>``, ``START``, ``HOLD <reason>``, ``RESOLVED <summary>``, ``ПРИНЯТО``, ``ОТКАЗ <причина>``,
``В РАБОТЕ``, ``ПАУЗА <причина>``, ``ВЫПОЛНЕНО <итог>``. The argument follows the keyword after a
space or ``:``/``-``/``—``. A command without an argument takes text only after punctuation
(``Accept, see you at 10``) unless typed in capitals (``START tomorrow 9:00``), so ordinary
sentences (``Start time is 10``) and ``Hold on, …`` are not commands. Everything after the
command line is the comment; with no command, all of it is.

A forwarded mail (``Fwd:`` subject or a forward marker in the own text) is never a command: it
becomes a comment whole, forwarded content included, because that content is why it was sent.
"""

# The Russian command words, attribution lines and signatures are Cyrillic on purpose.
# ruff: noqa: RUF001, RUF002

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

__all__ = ["Action", "Reply", "split_reply"]

Action = Literal["accept", "decline", "start", "hold", "resolve"]

_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"))
# Outlook's text stand-in for an inline image: "[cid:image001.png@01DA6EDE.6A3B2F10]".
_CID_PLACEHOLDER = re.compile(r"\[cid:[^\]\s]{1,200}\]")

_KEYWORDS: tuple[tuple[str, Action, bool], ...] = (
    ("accept", "accept", False),
    ("decline", "decline", True),
    ("start", "start", False),
    ("hold", "hold", True),
    ("resolved", "resolve", True),
    ("принято", "accept", False),
    ("отказ", "decline", True),
    (r"в\s+работе", "start", False),
    ("пауза", "hold", True),
    ("выполнено", "resolve", True),
)
_COMMANDS: tuple[tuple[re.Pattern[str], Action, bool], ...] = tuple(
    (re.compile(rf"(?P<kw>{pattern})(?P<rest>.*)", re.IGNORECASE | re.DOTALL), action, takes_arg)
    for pattern, action, takes_arg in _KEYWORDS
)
_NOT_A_COMMAND = re.compile(r"hold\s+(on|off|up)\b", re.IGNORECASE)
_PUNCTUATION = re.compile(r"\s*[.!,;:\-–—]+\s*")

_FORWARD_SUBJECT = re.compile(r"^\s*(fwd?|пересл(\.|ано)?|переслано)\s*:", re.IGNORECASE)
_FORWARD_MARKER = re.compile(
    r"^\s*(-{2,}\s*(forwarded message|original message forwarded|пересылаемое сообщение"
    r"|пересланное сообщение|перенаправленное сообщение)\s*-{2,}|begin forwarded message:"
    r"|начало переадресованного сообщения:)\s*$",
    re.IGNORECASE,
)
_ORIGINAL_MESSAGE = re.compile(
    r"^\s*-{2,}\s*(original message|исходное сообщение|оригинальное сообщение)\s*-{2,}\s*$",
    re.IGNORECASE,
)
_HEADER_FROM = re.compile(r"^\s*\*?(from|от)\s*:\*?\s*\S", re.IGNORECASE)
_HEADER_SENT = re.compile(r"^\s*\*?(sent|date|отправлено|дата)\s*:", re.IGNORECASE)
_HEADER_SUBJECT = re.compile(r"^\s*\*?(subject|тема)\s*:", re.IGNORECASE)
_WROTE = re.compile(
    r"\s(wrote|writes|написал|написала|написал\(а\)|писал|писала|писал\(а\)|пишет)\s*:\s*$",
    re.IGNORECASE,
)
_ATTRIBUTION_START = re.compile(
    r"^\s*(on\s|\d|(mon|tue|wed|thu|fri|sat|sun|пн|вт|ср|чт|пт|сб|вс)\w*,|понедельник|вторник"
    r"|среда|четверг|пятница|суббота|воскресенье)",
    re.IGNORECASE,
)
_ADDRESS_COLON = re.compile(r"\S+@\S+?>?\s*:\s*$")  # "..., Name <a@b>:" (Gmail-ru, Yandex)
_MAILRU = re.compile(r"\d{1,2}:\d{2}.*\sот\s.+:\s*$", re.IGNORECASE)
_MOBILE_SIGNATURE = re.compile(
    r"^\s*(sent from my \S+|sent from (mail|outlook|yahoo mail|gmail|yandex|samsung)\b|"
    r"get outlook for \S+|отправлено с (моего )?(iphone|ipad|android|мобильного|samsung)|"
    r"отправлено из (мобильной )?(почты mail\.ru|яндекс\.? ?почты|яндекс почты|mail\.ru)|"
    r"отправлено из приложения)",
    re.IGNORECASE,
)
_CLOSING = re.compile(
    r"^\s*(best regards|kind regards|regards|best wishes|с уважением|с наилучшими пожеланиями"
    r"|всего доброго|всего наилучшего)\s*[,.!]?\s*$",
    re.IGNORECASE,
)
_MAX_TEXT = 100_000
_CLOSING_TAIL_LINES = 6
_CLOSING_TAIL_WIDTH = 80


@dataclass(frozen=True, slots=True)
class Reply:
    """A reply split into an optional command, its argument and the free-text comment."""

    command: Action | None
    argument: str
    comment: str
    forwarded: bool = False

    @property
    def is_empty(self) -> bool:
        return self.command is None and not self.comment


def split_reply(text: str, *, subject: str = "") -> Reply:
    """Strip quoted history and signatures, then read the command on the first line.

    Only the first 100 000 characters are read (a comment holds 20 000; the rest of a longer
    text is nearly always quoted history), which keeps this well under a second.
    """
    lines = _normalise(text[:_MAX_TEXT])
    own = _strip_quotes(lines)
    # A marker counts only in the own text: an old forward inside quoted history does not.
    if _FORWARD_SUBJECT.match(subject) or any(_FORWARD_MARKER.match(line) for line in own):
        return Reply(command=None, argument="", comment=_join(lines), forwarded=True)
    own = _strip_signature(own)
    first = next((i for i, line in enumerate(own) if line.strip()), None)
    if first is None:
        return Reply(command=None, argument="", comment="")
    parsed = _command(own[first])
    if parsed is None:
        return Reply(command=None, argument="", comment=_join(own))
    action, argument, comment_head = parsed
    rest = own[first + 1 :]
    return Reply(
        command=action,
        argument=argument,
        comment=_join([comment_head, *rest] if comment_head else rest),
    )


def _normalise(text: str) -> list[str]:
    text = text.replace("\r\n", "\n").replace("\r", "\n").translate(_ZERO_WIDTH)
    text = _CID_PLACEHOLDER.sub("", text)
    return [line.replace("\xa0", " ").rstrip() for line in text.split("\n")]


def _join(lines: list[str]) -> str:
    text = "\n".join(lines).strip("\n")
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _is_quoted(line: str) -> bool:
    return line.lstrip().startswith(">")


def _attribution(lines: list[str], i: int) -> int:
    """How many lines (1-3) from ``i`` form an attribution line, or 0."""
    for width in (1, 2, 3):
        chunk = lines[i : i + width]
        if len(chunk) < width or any(not line.strip() or _is_quoted(line) for line in chunk):
            return 0
        if not chunk[-1].endswith(":"):  # every attribution shape ends with a colon
            continue
        candidate = " ".join(line.strip() for line in chunk)
        if len(candidate) > 300:
            return 0
        last = chunk[-1].strip()
        if width > 1 and (
            not _ATTRIBUTION_START.match(chunk[0])
            or (_ATTRIBUTION_START.match(last) and _looks_like_attribution(last))
        ):
            return 0  # a wrapped attribution starts like one; a line above a whole one is not
        if _looks_like_attribution(candidate):
            return width
    return 0


def _looks_like_attribution(line: str) -> bool:
    has_date_or_address = bool(re.search(r"\d|@", line))
    if _WROTE.search(line) and (has_date_or_address or line.lower().startswith("on ")):
        return True
    if _ADDRESS_COLON.search(line) and re.search(r"\d", line):
        return True
    return bool(_MAILRU.search(line))


def _is_header_block(lines: list[str], i: int) -> bool:
    """An Outlook-style ``From:`` / ``Sent:`` / ``Subject:`` block starting at line ``i``."""
    if not _HEADER_FROM.match(lines[i]):
        return False
    window = lines[i + 1 : i + 7]
    return any(_HEADER_SENT.match(line) for line in window) and any(
        _HEADER_SUBJECT.match(line) for line in window
    )


def _strip_quotes(lines: list[str]) -> list[str]:
    own: list[str] = []
    i, n = 0, len(lines)
    while i < n:
        line = lines[i]
        if _is_quoted(line):
            i += 1
            continue
        if _ORIGINAL_MESSAGE.match(line) or _is_header_block(lines, i):
            break
        width = _attribution(lines, i)
        if width:
            j = i + width
            while j < n and not lines[j].strip():
                j += 1
            if j < n and not _is_quoted(lines[j]):
                break  # history follows without quote marks: everything below is history
            i = j
            continue
        own.append(line)
        i += 1
    while own and (not own[-1].strip() or set(own[-1].strip()) <= set("_-=")):
        own.pop()  # trailing blank lines and the separator rule above a cut history block
    return own


def _strip_signature(lines: list[str]) -> list[str]:
    # A closing counts only with a short tail: few non-empty lines, none of them long.
    tail_lines, tail_long = 0, False
    short_tail = [False] * len(lines)
    for i in range(len(lines) - 1, -1, -1):
        short_tail[i] = tail_lines <= _CLOSING_TAIL_LINES and not tail_long
        if lines[i].strip():
            tail_lines += 1
            tail_long = tail_long or len(lines[i]) > _CLOSING_TAIL_WIDTH
    for i, line in enumerate(lines):
        if line in ("-- ", "--") or _MOBILE_SIGNATURE.match(line):
            return lines[:i]
        if short_tail[i] and _CLOSING.match(line):
            return lines[:i]
    return lines


def _command(line: str) -> tuple[Action, str, str] | None:
    """(action, argument, text after a bare command) when ``line`` is a command."""
    text = line.strip().strip("*_").strip()
    for pattern, action, takes_arg in _COMMANDS:
        match = pattern.fullmatch(text)
        if match is None:
            continue
        keyword, rest = match.group("kw"), match.group("rest")
        if rest and (rest[0].isalnum() or rest[0] == "_"):
            return None  # "Accepted", "Started", "Отказываюсь": a longer word
        if takes_arg:
            if _NOT_A_COMMAND.match(text) and not keyword.isupper():
                return None
            argument = rest.lstrip(" \t.,;:!-–—").strip().strip("*_").strip()
            return action, argument, ""
        if not rest.strip(" .!,;:-–—"):
            return action, "", ""
        punct = _PUNCTUATION.match(rest)
        if punct:
            return action, "", rest[punct.end() :].strip()
        if keyword.isupper():
            return action, "", rest.strip()
        return None
    return None
