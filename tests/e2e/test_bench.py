"""The benchmark command: every scenario runs against our layer, and failures stay in their cells.

These tests check that the scenarios run and report complete deliveries, never how fast: speed is judged by the
benchmark itself against baselines of the same run (docs/performance.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from channels_rabbitmq_threaded.bench.layers import LayerSpec
from channels_rabbitmq_threaded.bench.report import BASELINE, GOALS, Results
from channels_rabbitmq_threaded.bench.scenarios import BY_NAME, SCENARIOS

from ..conftest import HOST, ROOT

TINY = [
    "--sync-calls", "10", "--direct-calls", "20", "--sequential", "50", "--concurrent", "100", "--fanout", "5",
    "--round-trips", "20", "--channels", "200", "--raw", "100", "--bulk", "50", "--idle-seconds", "0.5",
    "--cpu", "100", "--bigroom", "3", "--bigroom-members", "40", "--storm", "50",
]  # fmt: skip


def bench(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    out = tmp_path / "bench.json"
    command = [sys.executable, "-m", "channels_rabbitmq_threaded", "bench", "--host", HOST, *TINY, "--json", str(out)]
    finished = subprocess.run([*command, *args], cwd=ROOT, capture_output=True, text=True, timeout=280)
    return finished, json.loads(out.read_text())


def cells_of(results: dict, layer: str) -> dict[str, dict]:
    return {cell["scenario"]: cell for cell in results["cells"] if cell["layer"] == layer}


@pytest.mark.timeout(300)
def test_every_scenario_runs_against_our_layer(tmp_path: Path) -> None:
    finished, results = bench(tmp_path)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    cells = cells_of(results, "ours") | cells_of(results, BASELINE)
    assert set(cells) == set(BY_NAME)
    for name, cell in cells.items():
        figures = cell["figures"]
        assert figures[BY_NAME[name].headline] >= 0
        assert figures.get("delivered") == figures.get("expected"), name  # every message arrived
    assert len(results["goals"]) == len(GOALS)  # one mode of ours measured: each goal judged once
    assert "Goals (from this run)" in finished.stdout
    assert "6. round trip" in finished.stdout


@pytest.mark.timeout(120)
def test_scenarios_that_do_not_apply_say_so(tmp_path: Path) -> None:
    in_memory = ["--layer", "channels.layers.InMemoryChannelLayer"]
    finished, results = bench(tmp_path, *in_memory, "--scenarios", "direct,sequential,memory")
    assert finished.returncode == 0, finished.stdout + finished.stderr
    cells = cells_of(results, "channels.layers")
    assert "no synchronous group_send" in cells["direct"]["not_applicable"]
    assert "own process" in cells["sequential"]["not_applicable"]
    assert cells["memory"]["figures"]["channels"] == 200


@pytest.mark.timeout(120)
def test_a_broken_layer_fails_in_its_cells_and_the_run_goes_on(tmp_path: Path) -> None:
    finished, results = bench(tmp_path, "--layer", "no_such_module.Layer", "--scenarios", "memory,idle")
    assert finished.returncode == 1
    cells = cells_of(results, "no_such_module")
    assert set(cells) == {"memory", "idle"}
    assert all("No module named 'no_such_module'" in cell["error"] for cell in cells.values())
    assert "FAILED: ModuleNotFoundError" in finished.stdout


@pytest.mark.timeout(120)
def test_a_cell_that_hangs_is_killed_and_reported(tmp_path: Path) -> None:
    finished, results = bench(tmp_path, "--scenarios", "idle", "--idle-seconds", "30", "--cell-timeout", "3")
    assert finished.returncode == 1
    assert cells_of(results, "ours")["idle"]["error"] == "timed out after 3s"


def test_bad_arguments_are_refused_before_anything_runs() -> None:
    for args, message in (
        (["--scenarios", "warp"], "unknown scenario 'warp'"),
        (["--layer", "x.Y", "--config", "[1]"], "--config must be a JSON object"),
        (["--layer", "x.Y", "--config", "{"], "--config is not JSON"),
    ):
        command = [sys.executable, "-m", "channels_rabbitmq_threaded", "bench", *args]
        finished = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert finished.returncode == 2
        assert message in finished.stderr


def test_goals_are_ratios_of_figures_from_the_same_run() -> None:
    ours, peer = LayerSpec("ours", "x.Y"), LayerSpec("channels_rabbitmq", "x.Z")
    results = Results([ours, peer], SCENARIOS)
    results.cells[("ours", "sequential")] = {"figures": {"delivered/s": 300.0}}
    results.cells[("channels_rabbitmq", "sequential")] = {"figures": {"delivered/s": 200.0}}
    results.cells[("ours", "roundtrip")] = {"figures": {"p50 ms": 1.0, "p99 ms": 4.0}}
    results.cells[("channels_rabbitmq", "roundtrip")] = {"error": "refused"}
    judged = {(goal.scenario, goal.text): goal.judge(results) for goal in GOALS}
    assert judged[("3 async send, sequential", ">= 1.0x channels_rabbitmq")] == (1.5, True)
    assert judged[("6 round trip p50", "<= channels_rabbitmq")] == (None, None)  # the peer failed: not judged


def test_a_subset_of_scenarios_prints_only_the_goals_it_measured(tmp_path: Path) -> None:
    finished, results = bench(tmp_path, "--scenarios", "idle")
    assert finished.returncode == 0, finished.stdout + finished.stderr
    goals = finished.stdout.split("Goals (from this run)")[1].strip().splitlines()
    assert len(goals) == 1 and "idle CPU" in goals[0], goals
    assert "not measured" not in finished.stdout
    cpu_ms = cells_of(results, "ours")["idle"]["figures"]["CPU ms per 10 s"]
    figure = f"{cpu_ms:.0f} ms"
    assert f"{figure} CPU" in finished.stdout  # the table ...
    assert f" {figure}  " in goals[0]  # ... and the goal show one figure, alike
