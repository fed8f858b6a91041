"""Sphinx configuration of the documentation site: `tox -e docs` (or `sphinx-build -W -b html docs docs/_build/html`).

The pages are Markdown (MyST), so they read the same on GitHub and on the built site.
"""

import re
from pathlib import Path

project = "channels_rabbitmq_threaded"
author = "the channels_rabbitmq_threaded developers"
copyright = "2026, the channels_rabbitmq_threaded developers"
_init = Path(__file__).parent.parent / "channels_rabbitmq_threaded" / "__init__.py"
release = re.search(r'__version__ = "([^"]+)"', _init.read_text()).group(1)

extensions = ["myst_parser", "sphinx.ext.autodoc"]
# The API page is built from the docstrings, which write code between single backquotes, as Markdown does.
default_role = "code"
autodoc_member_order = "bysource"
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "example", "performance-run.json"]
myst_heading_anchors = 3
html_theme = "alabaster"
html_theme_options = {"description": "A Django Channels layer on RabbitMQ that works from every event loop"}
