"""The documentation as a reader sees it: the Sphinx site built, its pages looked at in a real browser (no
horizontal scroll at 1,200 px)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ..conftest import ROOT, launch_chromium

DOCS = ROOT / "docs"


@pytest.fixture(scope="module")
def built_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("docs-html")
    command = [sys.executable, "-m", "sphinx", "-q", "-b", "html", str(DOCS), str(out)]
    subprocess.run(command, check=True, capture_output=True, timeout=300)
    return out


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
