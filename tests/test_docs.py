"""The documentation site: every option has its section, and the configuration reference reads at 1,200 px.

The page is built with Sphinx, as `tox -e docs` builds it, and opened in Debian's Chromium at 1,200 px: nothing may
stick out sideways (no horizontal scroll bar), which a wide table did before each option got a section of its own.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from channels_rabbitmq_threaded.config import OPTION_NAMES
from channels_rabbitmq_threaded.routing import DropReason

from .conftest import ROOT, launch_chromium

DOCS = ROOT / "docs"


def test_every_option_has_a_section_of_its_own() -> None:
    sections = re.findall(r"^### (\w+)$", (DOCS / "configuration.md").read_text(), re.MULTILINE)
    assert sorted(sections) == sorted(OPTION_NAMES)


@pytest.fixture(scope="module")
def built_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("docs-html")
    command = [sys.executable, "-m", "sphinx", "-q", "-b", "html", str(DOCS), str(out)]
    subprocess.run(command, check=True, capture_output=True, timeout=300)
    return out


@pytest.mark.slow  # a Sphinx build and a browser; Playwright's in-process loop also disturbs test_loops' 3.10 count
@pytest.mark.timeout(300)
@pytest.mark.parametrize("page", ["configuration", "quickstart"])
def test_the_page_has_no_horizontal_scroll_at_1200_px(built_site: Path, page: str) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            view = browser.new_page(viewport={"width": 1200, "height": 900})
            view.goto((built_site / f"{page}.html").as_uri())
            scroll_width = view.evaluate("document.documentElement.scrollWidth")
            client_width = view.evaluate("document.documentElement.clientWidth")
            assert scroll_width <= client_width, f"{page}.html is {scroll_width} px wide in a {client_width} px window"
        finally:
            browser.close()


def test_every_drop_reason_is_in_the_operations_guide_with_its_text() -> None:
    guide = (DOCS / "operations.md").read_text()
    for reason in DropReason:
        if reason is not DropReason.NO_LOCAL_MEMBER:  # logged at DEBUG: an empty group is normal
            assert f"| `{reason.value}` | {reason.text} |" in guide, reason
