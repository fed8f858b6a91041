"""The ``bench`` command: plan the cells, run each in its own interpreter, show progress, report.

Theory of operation: the layers to measure are ours (default), one named by ``--layer``/``--config``, or with
``--compare`` ours and every peer of `layers.peers` that is installed and whose server answers. Each (layer,
scenario) cell runs as ``python -m channels_rabbitmq_threaded.bench.cell`` in a new session; a cell that outlives
``--cell-timeout`` is killed with its whole session (its receiver processes included) and reported as failed.
A failed cell never stops the run. The exit status is 1 when a cell of the first layer failed, else 0.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from typing import Any

from .._cliargs import PROG, help_text, positive
from .._config import DEFAULT_HOST, redact_url
from . import layers
from .cell import RESULT_MARK, job_json
from .layers import LayerSpec
from .report import BASELINE, Results, cell_text, print_goals, print_table, write_json
from .scenarios import BY_NAME, SCENARIOS, Counts, Scenario, new_context

DEFAULT_REDIS = "redis://127.0.0.1:6379"
HELP = "measure layers side by side (see docs/performance.md)"


def add_arguments(parser: argparse.ArgumentParser, default_host: str) -> None:
    parser.add_argument(
        "--host", default=default_host, help=help_text(f"AMQP URL of the broker (default {default_host})")
    )
    parser.add_argument("--redis", default=DEFAULT_REDIS, help=f"Redis URL for the peers (default {DEFAULT_REDIS})")
    parser.add_argument(
        "--nats", default=layers.DEFAULT_NATS, help=f"NATS URL for channels_nats ({layers.DEFAULT_NATS})"
    )
    parser.add_argument("--layer", help="dotted path of a CHANNEL_LAYERS backend to measure instead of ours")
    parser.add_argument("--config", default="{}", help="JSON object of that layer's options (its CONFIG)")
    parser.add_argument("--compare", action="store_true", help="also run every installed peer whose server answers")
    parser.add_argument("--scenarios", default=",".join(BY_NAME), help="comma-separated (default: all): %(default)s")
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON to PATH")
    parser.add_argument(
        "--cell-timeout", type=positive(float), default=300.0, help="seconds one cell may take (default 300)"
    )
    defaults = Counts()
    for name in Counts.option_names():
        default = getattr(defaults, name)
        parser.add_argument(
            "--" + name.replace("_", "-"), type=positive(type(default)), default=default, help=f"(default {default})"
        )


def main(argv: list[str]) -> int:
    """`python -m channels_rabbitmq_threaded bench ARGS`: parse `argv` (the words after `bench`) and run."""
    parser = argparse.ArgumentParser(prog=f"{PROG} bench", description=HELP)
    add_arguments(parser, DEFAULT_HOST)
    return run(parser.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    try:
        plan = _layers(args)
        scenarios = [BY_NAME[name.strip()] for name in args.scenarios.split(",") if name.strip()]
    except KeyError as exc:
        print(f"unknown scenario {exc}; known: {', '.join(BY_NAME)}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    counts = Counts(**{name: getattr(args, name) for name in Counts.option_names()})
    context = new_context(args.host)
    results = Results(plan, scenarios)
    cells: list[tuple[str, LayerSpec, Scenario]] = []
    for scenario in sorted(scenarios, key=SCENARIOS.index):
        if scenario.baseline:  # measures the machine, not a layer: once
            cells.append((BASELINE, plan[0], scenario))
        else:
            cells += [(spec.label, spec, scenario) for spec in plan]
    print(f"bench: {', '.join(spec.label for spec in plan)}; broker {redact_url(args.host)}", file=sys.stderr)
    progress = Progress(len(cells))
    for label, spec, scenario in cells:
        progress.show(f"{label}: {scenario.title}")
        job = job_json(None if scenario.baseline else spec, scenario.name, counts, context)
        results.cells[(label, scenario.name)] = result = run_cell(job, args.cell_timeout)
        progress.result(cell_text(scenario, result))
    progress.done()
    print_table(results)
    for spec in plan:
        print(f"   {spec.label}: {spec.path} {json.dumps(spec.config)}")
    print()
    print_goals(results)
    if args.json:
        write_json(results, args.json, asdict(counts))
    return 1 if results.failed(plan[0].label) else 0


def _layers(args: argparse.Namespace) -> list[LayerSpec]:
    try:
        config = json.loads(args.config)
    except json.JSONDecodeError as exc:
        raise ValueError(f"--config is not JSON: {exc}") from None
    if not isinstance(config, dict):
        raise ValueError("--config must be a JSON object of the layer's options")
    named = [layers.custom(args.layer, config)] if args.layer else []
    if not args.compare:
        return named or [layers.ours(args.host)]
    plan = [layers.ours(args.host), layers.ours(args.host, wait_for_confirms=False), *named]
    for peer in layers.peers(args.host, args.redis, args.nats):
        if not peer.importable():
            print(f"bench: skipping {peer.label}: not installed", file=sys.stderr)
        elif not peer.reachable():
            print(f"bench: skipping {peer.label}: its server does not answer", file=sys.stderr)
        else:
            plan.append(peer)
    return plan


def run_cell(job: str, timeout: float) -> dict[str, Any]:
    """Run one cell in a new session; kill the session if it outlives `timeout`."""
    command = [sys.executable, "-m", "channels_rabbitmq_threaded.bench.cell", job]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_leftovers(process.pid)  # the whole session: the cell and its receivers
        process.communicate()
        return {"error": f"timed out after {timeout:g}s"}
    finally:
        _kill_leftovers(process.pid)
    for line in stdout.splitlines():
        if line.startswith(RESULT_MARK):
            result: dict[str, Any] = json.loads(line[len(RESULT_MARK) :])
            return result
    last = stderr.strip().splitlines()[-1:] or [f"exit status {process.returncode}"]
    return {"error": f"the cell process died: {last[0]}"}


def _kill_leftovers(session: int) -> None:
    """Receiver processes of a cell that crashed would otherwise outlive it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(session, signal.SIGKILL)


class Progress:
    """A one-line progress bar on stderr when it is a terminal; one line per cell otherwise."""

    WIDTH = 24

    def __init__(self, total: int) -> None:
        self._total = total
        self._done = -1
        self._started = time.monotonic()
        self._tty = sys.stderr.isatty()

    def show(self, what: str) -> None:
        self._done += 1
        filled = self.WIDTH * self._done // max(1, self._total)
        bar = "#" * filled + "." * (self.WIDTH - filled)
        elapsed = time.monotonic() - self._started
        line = f"[{bar}] {self._done}/{self._total} {elapsed:5.0f}s  {what}"
        if self._tty:
            sys.stderr.write("\r\033[K" + line[:160])
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def result(self, text: str) -> None:
        if not self._tty:  # a log file: keep each cell's outcome next to its line
            sys.stderr.write(f"    {text}\n")

    def done(self) -> None:
        self._done += 1
        line = f"[{'#' * self.WIDTH}] {self._total}/{self._total} {time.monotonic() - self._started:5.0f}s  done"
        sys.stderr.write(("\r\033[K" if self._tty else "") + line + "\n")
