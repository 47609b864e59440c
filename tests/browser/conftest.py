"""A headless Chromium for the web UI tests: Debian's ``/usr/bin/chromium`` driven by Playwright.

Playwright's own browser download (``playwright install``) is never used: CI installs the
``chromium`` Debian package (``.ci/run``). Without it the tests skip, or fail when ``CI=true``.
Each test gets fresh browser contexts (separate cookie jars) on a browser launched with a fresh
temporary profile. Screenshots of the main pages go to ``build/screenshots/`` (gitignored).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.private_broker import skip_or_fail

CHROMIUM = os.environ.get("TIX_TEST_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"


@pytest.fixture
def browser() -> Iterator[Any]:
    """A browser for one test; ask for it after ``nodes`` so that it stops first (the node
    fixture's teardown runs ``asyncio.run``, which cannot run inside Playwright's loop)."""
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        skip_or_fail(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip_or_fail("the playwright package is not installed (pip install -e '.[dev]')")
    profile = Path(tempfile.mkdtemp(prefix="tix-chromium-"))
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM,
                args=ARGS,
                headless=True,
                downloads_path=str(profile / "downloads"),
                env={**os.environ, "HOME": str(profile)},
                timeout=60_000,
            )
            try:
                yield browser
            finally:
                browser.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def shots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
