"""The web UI in a real browser, against two node processes over the machine's RabbitMQ.

One walk through the whole flow, as two companies' admins would do it in their own browsers:
link the nodes by invitation, create a ticket, delegate it, accept and resolve it at the
partner, watch the chain picture at the origin change without a reload, return it for rework;
then a client contact who cannot open another organisation's ticket by URL, and a POST without
the CSRF token that is refused.
"""

from __future__ import annotations

# ruff: noqa: RUF001  (Russian page texts)
import re
from pathlib import Path
from typing import Any

from tests.support.nodes import PASSWORD, NodeFactory, NodeProcess, eventually

TIMEOUT_MS = 30_000


def base(node: NodeProcess) -> str:
    return f"http://127.0.0.1:{node.port}"


def login(page: Any, node: NodeProcess, username: str = "admin", password: str = PASSWORD) -> None:
    page.goto(base(node) + "/ui/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("form[action='/ui/login'] button[type=submit]")
    page.wait_for_url("**/ui/tickets")


def flash(page: Any) -> Any:
    """The page's message (an ``expect`` on it waits for the page the action led to)."""
    return page.locator("p.flash")


def test_link_delegate_accept_resolve_watch_the_chain_and_return_for_rework(
    nodes: NodeFactory, browser: Any, shots: Path
) -> None:
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    acme = nodes("acme", label="ACME Vendor")
    north = nodes("northwind", label="Northwind Services")
    at_acme = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    at_north = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    a = at_acme.new_page()
    b = at_north.new_page()
    login(a, acme)
    login(b, north)

    # ACME invites Northwind; Northwind's admin pastes the token into their own UI.
    a.goto(base(acme) + "/ui/links")
    a.select_option("form[action='/ui/links/invite'] select[name=disclose_subcontractors]", "named")
    a.fill(
        "form[action='/ui/links/invite'] textarea[name=sla]",
        '{"targets": {"high": {"response_minutes": 60, "resolution_minutes": 480}}}',
    )
    a.click("#create-invitation")
    token = a.input_value("#invitation-token")
    assert token.count(".") == 2, "a JWT"
    a.screenshot(path=str(shots / "links-invitation.png"), full_page=True)
    b.goto(base(north) + "/ui/links")
    b.fill("form[action='/ui/links/accept'] textarea[name=token]", token)
    b.click("#accept-invitation")
    expect(flash(b)).to_have_text(re.compile(r"^Linked to ACME Vendor"))
    expect(b.locator(f"details.link-row[data-partner='{acme.account_id}']")).to_have_count(1)

    def linked() -> bool:
        a.goto(base(acme) + "/ui/links")
        return a.locator(f"details.link-row[data-partner='{north.account_id}']").count() == 1

    eventually(linked, timeout=30, interval=0.3, what="the link at acme")
    a.screenshot(path=str(shots / "links.png"), full_page=True)

    # ACME creates the ticket and delegates it.
    a.goto(base(acme) + "/ui/tickets/new")
    a.fill("input[name=title]", "ATM 0417 out of service")
    a.fill("textarea[name=description]", "Card reader rejects every card since 8:00.")
    a.select_option("select[name=priority]", "high")
    a.fill("input[name=site]", "Branch 12")
    a.fill("input[name=equipment]", "ATM 0417")
    a.fill("input[name=requester_name]", "Branch manager")
    a.click("form[action='/ui/tickets/new'] button[type=submit]")
    a.wait_for_url("**/ui/tickets/ACME-*")
    number = a.url.rsplit("/", 1)[1]
    expect(flash(a)).to_have_text(f"Ticket {number} created.")
    a.select_option("#delegate-form select[name=partner]", north.account_id)
    a.fill("#delegate-form textarea[name=note]", "Please send an engineer today.")
    a.click("#delegate-form button[type=submit]")
    expect(flash(a)).to_have_text(f"Offered to {north.account_id}.")
    expect(a.locator("#chain g.node[data-state=offered]")).to_have_count(1)
    expect(a.locator("#chain g.node[data-state=offered] text.t3")).to_contain_text("due 20")
    a.evaluate("window.__tixNoReload = 'still the same page'")

    # Northwind sees the offer, accepts, works and resolves it in its own UI.
    def offer_listed() -> bool:
        b.goto(base(north) + "/ui/tickets")
        return b.get_by_role("link", name="ATM 0417 out of service").count() == 1

    eventually(offer_listed, timeout=30, interval=0.3, what="the offer at northwind")
    b.screenshot(path=str(shots / "tickets-partner.png"), full_page=True)
    b.get_by_role("link", name="ATM 0417 out of service").click()
    expect(b.locator("#ticket-status")).to_have_text("offered")
    b.click("#accept-offer")
    expect(flash(b)).to_have_text("Offer accepted.")
    expect(b.locator("#ticket-status")).to_have_text("open")
    expect(b.locator("dd.clock-resolution")).to_have_count(1)
    b.set_input_files(
        "form[action$='/attachments'] input[type=file]",
        files=[{"name": "reader-serial.txt", "mimeType": "text/plain", "buffer": b"SN 0417-77"}],
    )
    b.select_option("form[action$='/attachments'] select[name=visibility]", "partner")
    b.click("form[action$='/attachments'] button[type=submit]")
    expect(flash(b)).to_have_text("File uploaded.")
    b.select_option("#status-form select[name=status]", "in_progress")
    b.click("#status-form button[type=submit]")
    expect(b.locator("#ticket-status")).to_have_text("in progress")
    b.select_option("#status-form select[name=status]", "resolved")
    b.fill("#status-form textarea[name=note]", "Replaced the card reader.")
    b.click("#status-form button[type=submit]")
    expect(b.locator("#ticket-status")).to_have_text("resolved")
    b.screenshot(path=str(shots / "ticket-partner.png"), full_page=True)

    # ACME's open page redraws the chain from the roll-up, without a reload.
    expect(a.locator("#chain g.node[data-status=resolved]")).to_have_count(1)
    expect(a.locator("#chain g.node[data-state=resolved]")).to_have_count(1)
    assert a.evaluate("window.__tixNoReload") == "still the same page"
    a.locator("#chain").screenshot(path=str(shots / "chain.png"))

    # ACME is not satisfied: back for rework; Northwind's ticket is reopened.
    a.reload()
    rework = a.locator(f"li.delegation[data-partner='{north.account_id}'] form[action$='/rework']")
    rework.locator("input[name=reason]").fill("The receipt printer still jams.")
    rework.locator("button[type=submit]").click()
    expect(flash(a)).to_have_text("Returned for rework.")
    expect(a.locator(f"li.delegation[data-partner='{north.account_id}']")).to_have_attribute(
        "data-state", "in_progress"
    )
    a.screenshot(path=str(shots / "ticket-origin.png"), full_page=True)

    # The partner's file travelled up the chain and downloads at the origin.
    a.reload()
    with a.expect_download() as download_info:
        a.get_by_role("link", name="reader-serial.txt").click()
    download = download_info.value
    assert download.suggested_filename == "reader-serial.txt"
    assert Path(download.path()).read_bytes() == b"SN 0417-77"

    def reopened() -> bool:
        b.reload()
        return bool(b.locator("#ticket-status").inner_text() == "reopened")

    eventually(reopened, timeout=30, interval=0.3, what="the rework at northwind")
    expect(b.get_by_text("The receipt printer still jams.").first).to_be_visible()

    # The reports page has Northwind's scorecard; the ticket list has the ticket.
    a.goto(base(acme) + "/ui/reports")
    expect(a.locator(f"#scorecards tr[data-partner='{north.account_id}']")).to_have_count(1)
    a.screenshot(path=str(shots / "reports.png"), full_page=True)
    a.goto(base(acme) + "/ui/tickets?q=ATM")
    expect(a.get_by_role("link", name=number)).to_have_count(1)
    a.screenshot(path=str(shots / "tickets-origin.png"), full_page=True)

    # A POST without the CSRF token is refused, even with the session cookie.
    refused = a.request.post(
        base(acme) + f"/ui/tickets/{number}/comments",
        form={"body": "forged", "visibility": "public"},
    )
    assert refused.status == 403
    a.reload()
    expect(a.get_by_text("forged")).to_have_count(0)

    # The client contact portal: their organisation only; another one's ticket is a 404 page.
    # ACME's admin adds the client's contact on the users page.
    a.goto(base(acme) + "/ui/users")
    a.fill("#add-user input[name=username]", "alice")
    a.fill("#add-user input[name=password]", PASSWORD)
    a.fill("#add-user input[name=full_name]", "Alice")
    a.select_option("#add-user select[name=role]", "contact")
    a.fill("#add-user input[name=organisation]", "Bank North")
    a.click("#add-user button[type=submit]")
    expect(flash(a)).to_have_text("User alice added.")
    a.screenshot(path=str(shots / "users.png"), full_page=True)
    own = acme.call(
        "POST", "/api/v1/tickets", json={"title": "North lobby door", "organisation": "Bank North"}
    )["number"]
    other = acme.call(
        "POST", "/api/v1/tickets", json={"title": "South vault alarm", "organisation": "Bank South"}
    )["number"]
    phone = browser.new_context(
        viewport={"width": 390, "height": 844}, locale="ru-RU", is_mobile=True, has_touch=True
    )
    c = phone.new_page()
    login(c, acme, "alice")
    expect(c.get_by_role("link", name="North lobby door")).to_have_count(1)
    expect(c.get_by_text("South vault alarm")).to_have_count(0)
    c.screenshot(path=str(shots / "portal-list-phone.png"), full_page=True)
    response = c.goto(base(acme) + f"/ui/tickets/{other}")
    assert response is not None and response.status == 404
    expect(c.locator("h1")).to_have_text("Не найдено")
    c.goto(base(acme) + f"/ui/tickets/{own}")
    c.fill("textarea[name=body]", "Дверь снова заедает")
    c.click("form[action$='/comments'] button[type=submit]")
    expect(flash(c)).to_have_text("Комментарий добавлен.")
    c.screenshot(path=str(shots / "portal-ticket-phone.png"), full_page=True)
    for context in (at_acme, at_north, phone):
        context.close()
