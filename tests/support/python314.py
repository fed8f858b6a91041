"""Python 3.14 for the tests: a private root built from Debian sid's packages, and the suite run inside it.

    python -m tests.support.python314 pytest -m "not node and not slow"

builds, once, a root file system with `python3.14` and its `venv` module from Debian sid (`mmdebstrap`, from
Debian's archive, as `rabbitmq4.py` does; the version is pinned, `PINNED`), and a virtual environment in it
(`/opt/venv`); then, in a mount namespace of its own, binds this checkout at `/project` in the root, installs it
there with its `tests` extra (from the package index, trusting the host's certificate authorities, which go in
the root's store), and runs the command in `/project` with that environment's Python. The root shares the host's
network, so the tests reach the machine's RabbitMQ at 127.0.0.1:5672 as they do outside. The root is cached under
``~/.cache/channels_rabbitmq_threaded/``. The root has no rabbitmqctl, so the run's names on the broker get a
prefix chosen here (`TEST_RUN_PREFIX`), and what is left under it is removed from here afterwards. When the root
cannot be built it says why and exits with status 3: it never skips. Needs root (chroot, a mount namespace), as CI
has.
"""

from __future__ import annotations

import os
import secrets
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from .leftovers import remove_prefixed
from .rabbitmq4 import CACHE, Unavailable, debian_root

PINNED = "3.14.10"  # the Python 3.14 Debian sid gives (its archive is a frozen snapshot here)
ROOT = CACHE / "python314-sid-root"
CHECKOUT = Path(__file__).resolve().parents[2]
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")  # the package index may be reached through the host's CAs


def python_version(root: Path) -> str:
    command = ["chroot", str(root), "python3.14", "-c", "import platform; print(platform.python_version())"]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    return result.stdout.strip()


def build_root() -> Path:
    """The cached root with Python 3.14 and an empty virtual environment, built if missing or incomplete."""

    def with_a_venv(building: Path) -> str:
        version = python_version(building)
        if version != PINNED:
            raise Unavailable(f"Debian sid gives Python {version!r}, not the pinned {PINNED}")
        subprocess.run(["chroot", str(building), "python3.14", "-m", "venv", "/opt/venv"], check=True)
        (building / "project").mkdir()
        return version

    return debian_root(ROOT, "sid", "python3.14,python3.14-venv,ca-certificates", with_a_venv)


def run_inside(root: Path, command: list[str]) -> int:
    """Install the checkout in the root's environment and run `command` in it, in a mount namespace of its own."""
    if HOST_CA.exists():  # pip reads the system's store (truststore), so the host's authorities go there
        shutil.copyfile(HOST_CA, root / "etc" / "ssl" / "certs" / "ca-certificates.crt")
    inside = (
        "cd /project && export PIP_DISABLE_PIP_VERSION_CHECK=1 PATH=/opt/venv/bin:$PATH"
        " && python -m pip install -q -e '.[tests]' && exec " + shlex.join(command)
    )
    script = (
        f'mount --bind "{CHECKOUT}" "{root}/project" && mount -t proc proc "{root}/proc"'
        f' && exec chroot "{root}" sh -c {shlex.quote(inside)}'
    )
    environment = {key: value for key, value in os.environ.items() if not key.startswith(("PIP_", "VIRTUAL_ENV"))}
    environment["HOME"] = "/root"
    # The root has no rabbitmqctl: the run's names get a prefix chosen here, and are removed from here afterwards.
    prefix = environment["TEST_RUN_PREFIX"] = f"test-py314-{secrets.token_hex(3)}"
    unshare = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script]
    try:
        return subprocess.run(unshare, env=environment, check=False).returncode
    finally:
        url = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
        remove_prefixed(prefix, url, shlex.split(os.environ.get("RABBITMQCTL", "rabbitmqctl")))


def main(command: list[str]) -> int:
    if not command:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        root = build_root()
    except (Unavailable, subprocess.CalledProcessError) as exc:
        print(f"python314: unavailable: {exc}", file=sys.stderr)
        return 3
    return run_inside(root, command)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
