"""Linking two companies through the hub in a real browser: two node processes on the machine's
RabbitMQ and a hub (in-process on loopback, no broker needed).

ACME's admin finds Bravo in the directory and sends it an invitation with an SLA; the invitation
arrives at Bravo's node without anyone asking (the poller's count next to "Partners"); Bravo's
admin reads who sends it and what it promises, and clicks Accept; the link then appears at ACME.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.test_web_browser import base, flash, login
from tests.support.hub import HubServer, serve_hub
from tests.support.nodes import NodeFactory, eventually

TIMEOUT_MS = 30_000


@pytest.fixture
def hub(tmp_path: Path, db_backend: str) -> Iterator[HubServer]:
    with serve_hub(tmp_path, db_backend) as server:
        yield server


def test_an_invitation_sent_through_the_hub_is_accepted_in_one_click(
    hub: HubServer, nodes: NodeFactory, browser: Any, shots: Path
) -> None:
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    env = {"TIX_HUB_URL": hub.url, "TIX_HUB_POLL_SECONDS": "0.5"}
    acme = nodes("hacme", label="ACME Lifts", start=False)
    bravo = nodes("hbravo", label="Bravo Service", start=False)
    for node in (acme, bravo):
        node.start(env)
        node.call("POST", "/api/v1/hub/register", json={"transport": "amqp"})
    at_acme = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    at_bravo = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    a = at_acme.new_page()
    b = at_bravo.new_page()
    login(a, acme)
    login(b, bravo)

    # ACME searches the directory and invites Bravo from the results, with an SLA.
    a.goto(base(acme) + "/ui/links")
    a.fill("#hub-directory input[name=q]", "Bravo Service")
    a.click("#hub-search")
    entry = a.locator(f".directory-entry[data-account='{bravo.account_id}']")
    expect(entry).to_have_count(1)
    entry.locator("summary").click()
    entry.locator("select[name=disclose_subcontractors]").select_option("anonymous")
    entry.locator("textarea[name=sla]").fill(
        '{"targets": {"high": {"response_minutes": 60, "resolution_minutes": 480}}}'
    )
    entry.locator("input[name=note]").fill("lift maintenance, north region")
    entry.locator("button.hub-invite").click()
    expect(flash(a)).to_have_text(f"Invitation sent to {bravo.account_id} through the hub.")

    # It arrives at Bravo by itself: the count next to "Partners" (reloading the ticket list).
    def arrived() -> bool:
        b.goto(base(bravo) + "/ui/tickets")
        return b.locator("#hub-pending").count() == 1

    eventually(arrived, timeout=30, interval=0.5, what="the invitation's count at bravo")
    expect(b.locator("#hub-pending")).to_have_text("1")
    b.click("nav a[href='/ui/links']")
    row = b.locator(f".hub-row.incoming[data-from='{acme.account_id}']")
    expect(row).to_contain_text("ACME Lifts")
    expect(row).to_contain_text("lift maintenance, north region")
    expect(row).to_contain_text("Disclose subcontractors: anonymous")
    expect(row.locator("li.sla")).to_have_text(
        re.compile(r"high — response 60 min, resolution 480 min")
    )
    b.screenshot(path=str(shots / "links-incoming.png"), full_page=True)

    # One click.
    row.locator("button.accept-incoming").click()
    expect(flash(b)).to_have_text("Linked to ACME Lifts.")
    expect(b.locator(f"details.link-row[data-partner='{acme.account_id}']")).to_have_count(1)
    expect(b.locator("#incoming-invitations")).to_have_count(0)
    expect(b.locator("#hub-pending")).to_have_count(0)

    # The link.accept travels over the broker; ACME then has Bravo as its downstream.
    def linked() -> bool:
        a.goto(base(acme) + "/ui/links")
        return a.locator(f"details.link-row[data-partner='{bravo.account_id}']").count() == 1

    eventually(linked, timeout=30, interval=0.3, what="the link at acme")
    a.screenshot(path=str(shots / "links-linked-through-hub.png"), full_page=True)
    sent = a.locator(f".hub-row.sent[data-to='{bravo.account_id}']")
    expect(sent).to_have_attribute("data-state", "accepted")

    # A second invitation, declined with a reason: ACME's page says so, with the reason.
    a.fill("#hub-directory input[name=q]", "Bravo Service")
    a.click("#hub-search")
    entry = a.locator(f".directory-entry[data-account='{bravo.account_id}']")
    entry.locator("summary").click()
    entry.locator("button.hub-invite").click()
    expect(flash(a)).to_have_text(f"Invitation sent to {bravo.account_id} through the hub.")
    expect(a.locator(".hub-row.sent[data-state='pending']")).to_have_count(1)
    b.goto(base(bravo) + "/ui/links")
    row = b.locator(f".hub-row.incoming[data-from='{acme.account_id}']")
    row.locator("input.decline-reason").fill("we only work in the south")
    row.locator("button.decline-incoming").click()
    expect(flash(b)).to_have_text("Invitation from ACME Lifts declined.")

    def declined() -> bool:
        a.goto(base(acme) + "/ui/links")
        return a.locator(".hub-row.sent[data-state='declined']").count() == 1

    eventually(declined, timeout=30, interval=0.5, what="the answer at acme")
    answer = a.locator(".hub-row.sent[data-state='declined']")
    expect(answer).to_contain_text("declined")
    expect(answer).to_contain_text("we only work in the south")
    a.screenshot(path=str(shots / "links-sent-declined.png"), full_page=True)
