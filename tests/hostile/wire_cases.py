"""Hostile envelopes against one node's inbox, in-process (``tests.support.inproc``), as data.

The gaps ``tests/e2e/test_hostile_wire.py`` leaves (that one covers tampering, wrong keys,
unlinked senders, wrong recipients, unknown versions and types, oversize, the future, replays
and stale ``seq`` over the real broker): a suspended link's partner, a delegation of another
link, unicode edge cases, 10⁵-item arrays, deep nesting, JSON traps inside a signed body,
fields added after signing, re-encoded signatures, and the non-canonical but equivalent bytes
that must still verify.

``Wire`` is a two-level chain (``gc`` delegated a ticket to ``l1``, accepted) plus ``sus``,
linked to ``gc`` and then suspended by ``gc`` after being offered a second ticket. Every case
makes bytes that arrive at ``gc``; ``check`` requires the expected outcome and reason, one new
``rejected_inbound`` row per rejection and nothing else changed at ``gc``, and then a valid
comment from ``l1`` applied.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlmodel import Session, SQLModel, col
from sqlmodel import select as sql_select

from account.delegations.models import Delegation
from account.links import service as link_service
from account.links.models import Link, LinkPatch
from account.messaging import inbox
from account.messaging.models import RejectedInbound
from account.tickets.models import Comment
from exchange.canonical import canonical
from exchange.clock import instant, utcnow
from exchange.envelopes import seal
from exchange.signing import sign_envelope
from schemas import messages as m
from tests.support.inproc import ChainShape, Net, Peer, build_chain

__all__ = ["WIRE_CASES", "Wire", "WireCase", "WireVerdict", "check_wire", "wire"]


@dataclass
class Wire:
    """The receiving node ``gc``, its honest partner ``l1`` and the suspended partner ``sus``."""

    net: Net
    link: str  # gc <-> l1
    delegation: str  # gc's ticket delegated to l1
    sus_link: str
    sus_delegation: str  # gc's second ticket, offered to sus before the suspension
    seq: int = 1000

    @property
    def gc(self) -> Peer:
        return self.net.peers["gc"]

    @property
    def l1(self) -> Peer:
        return self.net.peers["l1"]

    @property
    def sus(self) -> Peer:
        return self.net.peers["sus"]

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def comment(self, text: str = "on my way", **over: Any) -> bytes:
        """A valid ``ticket.comment`` from ``l1`` to ``gc`` (fields overridable)."""
        fields: dict[str, Any] = {
            "key": self.l1.identity.key,
            "sender": "l1",
            "to": "gc",
            "message_type": "ticket.comment",
            "link": self.link,
            "subject": self.delegation,
            "seq": self.next_seq(),
            "body": m.TicketComment(
                comment_id=str(uuid.uuid4()),
                author="Engineer",
                body=text,
                created_at=instant(utcnow()),
            ),
        }
        fields.update(over)
        return seal(**fields)[1]

    def unsigned(self, data: bytes) -> dict[str, Any]:
        """The envelope of ``data`` as a dict, without its signature."""
        value: dict[str, Any] = json.loads(data)
        value.pop("sig")
        return value

    def resign(self, value: dict[str, Any]) -> bytes:
        return canonical(sign_envelope(value, self.l1.identity.key))

    def receive(self, data: bytes) -> inbox.Received:
        return inbox.receive(data, engine=self.gc.engine, identities=self.gc.identities)

    def fingerprint(self) -> str:
        """Every row of every table at ``gc`` but the rejection record."""
        digest = hashlib.sha256()
        with self.gc.engine.connect() as conn:
            for table in SQLModel.metadata.sorted_tables:
                if table.name == RejectedInbound.__tablename__:
                    continue
                order = list(table.primary_key.columns) or list(table.columns)
                for row in conn.execute(select(table).order_by(*order)):
                    digest.update(repr(tuple(row)).encode("utf-8", "backslashreplace"))
        return digest.hexdigest()

    def rejections(self) -> int:
        with Session(self.gc.engine) as session:
            return int(session.exec(select(func.count()).select_from(RejectedInbound)).one()[0])

    def comment_bodies(self) -> list[str]:
        with Session(self.gc.engine) as session:
            return list(session.exec(sql_select(Comment.body).order_by(col(Comment.id))).all())


@contextmanager
def wire(directory: Path, backend: str) -> Iterator[Wire]:
    """Build the federation of the module docstring under ``directory`` on ``backend``."""
    with Net(directory, backend) as net:
        chain = build_chain(net, ChainShape(depth=1))
        net.add_peer("sus")
        sus_link = net.link("gc", "sus")
        net.drain_fifo()
        second = net.open_ticket("gc", "Second site")
        sus_delegation = net.delegate("gc", second, "sus")
        net.network.clear()  # the offer never reaches sus
        gc = net.peers["gc"]
        with gc.session() as session:
            link = session.get(Link, sus_link)
            assert link is not None
            link_service.patch(
                session=session,
                identity=gc.identity,
                link=link,
                patch_in=LinkPatch(state="suspended"),
            )
            session.commit()
        net.collect()
        net.network.clear()  # sus never hears of it; what matters is gc's view
        with gc.session() as session:
            up = session.exec(
                sql_select(Delegation).where(Delegation.delegation_id == chain.delegations["l1"])
            ).one()
        yield Wire(
            net=net,
            link=up.link_id,
            delegation=chain.delegations["l1"],
            sus_link=sus_link,
            sus_delegation=sus_delegation,
        )


@dataclass(frozen=True)
class WireCase:
    """One hostile envelope: what it is, the outcome and reason expected, how to make it."""

    id: str
    expected: str  # "rejected:<reason>" or "applied"
    make: Callable[[Wire], bytes]
    stored: str | None = None  # for applied comments: the body that must be stored literally


@dataclass(frozen=True)
class WireVerdict:
    case: WireCase
    got: str
    unchanged: bool
    next_applied: bool

    @property
    def passed(self) -> bool:
        return self.got == self.case.expected and self.unchanged and self.next_applied


def check_wire(w: Wire, case: WireCase) -> WireVerdict:
    """Deliver ``case`` at ``gc``, check the reject contract, then deliver a valid message."""
    before, rejected_before = w.fingerprint(), w.rejections()
    received = w.receive(case.make(w))
    got = received.outcome + (f":{received.reason}" if received.reason else "")
    if received.outcome == "rejected":
        unchanged = w.fingerprint() == before and w.rejections() == rejected_before + 1
    else:
        unchanged = case.stored is None or case.stored in w.comment_bodies()
    after = w.receive(w.comment("next valid message"))
    return WireVerdict(case, got, unchanged, after.outcome == "applied")


WIRE_CASES: list[WireCase] = []


def wire_case(
    expected: str, *, stored: str | None = None
) -> Callable[[Callable[[Wire], bytes]], Callable[[Wire], bytes]]:
    def register(make: Callable[[Wire], bytes]) -> Callable[[Wire], bytes]:
        WIRE_CASES.append(WireCase(make.__name__, expected, make, stored))
        return make

    return register


def _with_body_text(w: Wire, raw_body: str) -> bytes:
    """A comment whose JSON text has ``"body": <raw_body>`` spliced in (signature left stale)."""
    text = w.comment("PLACEHOLDER").decode()
    return text.replace('"PLACEHOLDER"', raw_body).encode("utf-8", "surrogatepass")


# -- who may speak -------------------------------------------------------------------------------


@wire_case("rejected:link_inactive")
def signed_by_a_suspended_links_partner(w: Wire) -> bytes:
    return w.comment(
        key=w.sus.identity.key,
        sender="sus",
        link=w.sus_link,
        subject=w.sus_delegation,
    )


@wire_case("rejected:binding_mismatch")
def partner_addresses_a_delegation_of_another_link(w: Wire) -> bytes:
    return w.comment(subject=w.sus_delegation)


@wire_case("rejected:unknown_subject")
def partner_addresses_an_unknown_delegation(w: Wire) -> bytes:
    return w.comment(subject=str(uuid.uuid4()))


@wire_case("rejected:unknown_kid")
def suspended_partner_signs_on_the_active_link(w: Wire) -> bytes:
    return w.comment(key=w.sus.identity.key)


# -- unicode -------------------------------------------------------------------------------------


@wire_case("rejected:malformed")
def lone_surrogate_in_a_body_string(w: Wire) -> bytes:
    return _with_body_text(w, '"broken \\ud800 text"')


@wire_case("rejected:malformed")
def lone_surrogate_in_a_key(w: Wire) -> bytes:
    value = json.loads(w.comment())
    text = json.dumps(value).replace('"author"', '"author\\udc00"', 1)
    return text.encode()


@wire_case("rejected:malformed")
def nul_in_a_signed_comment(w: Wire) -> bytes:
    return w.comment("before\x00after")


RTL_AND_ASTRAL = "invoice\u202egnp.exe \U0001f525 e\u0301 zero\u200bwidth \U00010348"


@wire_case("applied", stored=RTL_AND_ASTRAL)
def rtl_override_and_non_bmp_text_are_stored_literally(w: Wire) -> bytes:
    return w.comment(RTL_AND_ASTRAL)


# -- sizes and shapes ----------------------------------------------------------------------------


@wire_case("rejected:schema")
def array_of_100k_items_in_a_signed_body(w: Wire) -> bytes:
    value = w.unsigned(w.comment())
    value["type"] = "ticket.status"
    value["body"] = {
        "ref": "L1-1",
        "status": "in_progress",
        "changed_at": instant(utcnow()),
        "subtree": [1] * 100_000,
    }
    return w.resign(value)


@wire_case("rejected:malformed")
def nesting_33_deep(w: Wire) -> bytes:
    return _with_body_text(w, "[" * 33 + "]" * 33)


@wire_case("rejected:malformed")
def nesting_10k_deep(w: Wire) -> bytes:
    return _with_body_text(w, "[" * 10_000 + "]" * 10_000)


@wire_case("rejected:malformed")
def duplicate_key_inside_the_body(w: Wire) -> bytes:
    return w.comment().replace(b'"author":', b'"author":"x","author":', 1)


@wire_case("rejected:malformed")
def nan_inside_the_body(w: Wire) -> bytes:
    return _with_body_text(w, "NaN")


@wire_case("rejected:malformed")
def float_inside_the_body(w: Wire) -> bytes:
    return _with_body_text(w, "1.5e3")


@wire_case("rejected:malformed")
def integer_of_5000_digits(w: Wire) -> bytes:
    return _with_body_text(w, "9" * 5000)


@wire_case("rejected:malformed")
def byte_order_mark(w: Wire) -> bytes:
    return b"\xef\xbb\xbf" + w.comment()


@wire_case("rejected:malformed")
def trailing_garbage(w: Wire) -> bytes:
    return w.comment() + b" {}"


@wire_case("rejected:malformed")
def not_utf8(w: Wire) -> bytes:
    return w.comment().replace(b"on my way", b"on my \xc0\xaf way")


# -- the signature and what it covers ------------------------------------------------------------


@wire_case("rejected:schema")
def hops_added_after_signing(w: Wire) -> bytes:
    value = json.loads(w.comment())
    value["hops"] = 0
    return canonical(value)


@wire_case("rejected:invalid_signature")
def body_field_added_inside_after_signing(w: Wire) -> bytes:
    value = json.loads(w.comment())
    value["body"]["visibility"] = "public"  # was "partner" when signed
    return canonical(value)


@wire_case("rejected:schema")  # the sig pattern refuses it before any crypto
def signature_truncated(w: Wire) -> bytes:
    value = json.loads(w.comment())
    value["sig"] = value["sig"][:-4]
    return canonical(value)


@wire_case("rejected:schema")  # the sig pattern refuses it before any crypto
def signature_re_encoded_as_standard_base64(w: Wire) -> bytes:
    value = json.loads(w.comment())
    raw = base64.urlsafe_b64decode(value["sig"] + "=" * (-len(value["sig"]) % 4))
    value["sig"] = base64.b64encode(raw).decode()
    return canonical(value)


@wire_case("rejected:invalid_signature")
def signature_of_another_message(w: Wire) -> bytes:
    value = json.loads(w.comment())
    value["sig"] = json.loads(w.comment())["sig"]
    return canonical(value)


@wire_case("applied", stored="pretty but equivalent")
def non_canonical_bytes_of_a_valid_envelope_still_verify(w: Wire) -> bytes:
    value = json.loads(w.comment("pretty but equivalent"))
    reordered = dict(reversed(list(value.items())))
    text = json.dumps(reordered, indent=3, ensure_ascii=True).replace('"gc"', '"\\u0067c"')
    return text.encode()
