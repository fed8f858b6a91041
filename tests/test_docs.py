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

from .conftest import HOST, ROOT, TEST_EXCHANGE, launch_chromium

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


WATCHING_PREAMBLE = f"""
import django
from django.conf import settings

settings.configure(
    INSTALLED_APPS=["channels", "health_check"],
    USE_TZ=True,
    ROOT_URLCONF="__main__",
    ALLOWED_HOSTS=["testserver"],
    TEMPLATES=[{{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}}],
    CHANNEL_LAYERS={{"default": {{
        "BACKEND": "channels_rabbitmq_threaded.core.RabbitmqChannelLayer",
        "CONFIG": {{"host": {HOST!r}, "groups_exchange": {TEST_EXCHANGE!r}}},
    }}}},
)
django.setup()
"""
WATCHING_CHECKS = """
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.http import HttpRequest
from django.test import Client

layer = get_channel_layer()
async_to_sync(layer.group_send)("watched", {"type": "traffic"})
body = metrics(HttpRequest()).content.decode()
assert 'channels_rabbitmq_calls_total{alias="default",call="group_send",outcome="confirmed"} 1.0' in body, body
response = Client().get("/health/", HTTP_ACCEPT="application/json")
assert response.status_code == 200, response.content
print("DOCS-OK", response.content.decode())
"""


def test_the_watching_section_of_the_operations_guide_runs_as_written(tmp_path: Path) -> None:
    """Its Python blocks, in order, in one script: stats and ping, the metrics view, OpenTelemetry, the health URL."""
    guide = (DOCS / "operations.md").read_text()
    section = guide.split("## Watching the layer", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    assert len(blocks) == 4
    script = tmp_path / "watching.py"
    script.write_text(WATCHING_PREAMBLE + "\n".join(blocks) + WATCHING_CHECKS)
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0 and "DOCS-OK" in result.stdout, result.stdout + result.stderr
