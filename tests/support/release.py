"""The release as a user gets it: build, check, install the wheel in a fresh virtualenv, use it from there.

    python -m tests.support.release

builds the sdist, and the wheel from it (`python -m build`, in an isolated environment), checks both with `twine check
--strict`, checks that the wheel holds every module of the package, its `py.typed` and its license and nothing else
(no tests, docs or benchmarks), then installs the wheel into a new virtualenv outside the checkout and, from there, runs
`python -m channels_rabbitmq_threaded check` against the machine's broker (`AMQP_URL`) and mypy in strict mode
over a few lines that use the public API (with `types-channels`, as a typed Django project has), which fails
unless the installed package is typed. Exits non-zero at the first step that fails.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HOST = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
PACKAGE = "channels_rabbitmq_threaded"

USER_CODE = f"""
from channels_rabbitmq_threaded import BrokerUnavailable, RabbitmqChannelLayer
from channels_rabbitmq_threaded.lifespan import CloseLayersAtShutdown
from channels_rabbitmq_threaded.stats import LayerStats

layer = RabbitmqChannelLayer(host={HOST!r}, capacity=100)


async def chat() -> str:
    name: str = await layer.new_channel()
    await layer.group_add("room", name)
    await layer.group_send("room", {{"type": "chat.message", "text": "hi"}})
    message: dict[str, object] = await layer.receive(name)
    return str(message["text"])


def notify() -> LayerStats:
    try:
        layer.group_send_sync("room", {{"type": "chat.message"}}, timeout=5.0)
    except BrokerUnavailable:
        pass
    return layer.stats()


wrapped = CloseLayersAtShutdown
"""


def run(*command: str | Path, cwd: Path = ROOT) -> None:
    print("$", " ".join(str(part) for part in command), flush=True)
    subprocess.run([str(part) for part in command], cwd=cwd, check=True)


def check_wheel(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    outside = [name for name in names if not name.startswith((f"{PACKAGE}/", f"{PACKAGE}-"))]
    assert not outside, f"the wheel holds files outside the package: {outside}"
    assert f"{PACKAGE}/py.typed" in names, "the wheel has no py.typed"
    assert any(name.endswith("LICENSE") for name in names), "the wheel has no LICENSE"
    modules = {path.relative_to(ROOT).as_posix() for path in (ROOT / PACKAGE).rglob("*.py")}
    assert modules <= set(names), f"the wheel lacks modules of the package: {sorted(modules - set(names))}"
    print(f"{wheel.name}: {len(names)} files, all of the package")


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="release-") as scratch:
        work = Path(scratch)
        dist, user = work / "dist", work / "user"
        run(sys.executable, "-m", "build", "--outdir", dist)  # the wheel is built from the sdist
        run(sys.executable, "-m", "twine", "check", "--strict", *sorted(dist.iterdir()))
        (wheel,) = dist.glob("*.whl")
        check_wheel(wheel)
        run(sys.executable, "-m", "venv", user)
        python = user / "bin" / "python"
        run(python, "-m", "pip", "install", "-q", wheel, "mypy", "types-channels", cwd=work)
        run(python, "-m", PACKAGE, "check", "--host", HOST, "--count", "3", cwd=work)
        (work / "user_code.py").write_text(USER_CODE)
        run(python, "-m", "mypy", "--strict", "--no-incremental", "user_code.py", cwd=work)
    print("release: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
