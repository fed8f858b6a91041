#!/usr/bin/env python
"""manage.py of the test project: `python tests/support/django_project/manage.py runworker jobs.runworker`."""

import os
import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # the repository, for tests.support.django_project
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.support.django_project.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
