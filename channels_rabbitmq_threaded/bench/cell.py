"""One cell of the benchmark (one layer, one scenario) in a fresh interpreter.

Theory of operation: the parent runs ``python -m channels_rabbitmq_threaded.bench.cell JOB`` in a session of its
own and reads one line starting with `RESULT_MARK` from stdout: JSON with ``figures``, or ``not_applicable`` or
``error`` and its text. Anything else the layer prints or logs goes to stderr, which the parent shows only when
the cell failed. The parent enforces the time limit (it kills the session); this process never judges time.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import asdict
from typing import Any

from .layers import LayerSpec
from .members import BenchError
from .scenarios import BY_NAME, Context, Counts, NotApplicable

RESULT_MARK = "BENCH-RESULT "


def job_json(spec: LayerSpec | None, scenario: str, counts: Counts, context: Context) -> str:
    return json.dumps(
        {
            "spec": spec.as_json() if spec else None,
            "scenario": scenario,
            "counts": asdict(counts),
            "context": asdict(context),
        }
    )


def run(job: dict[str, Any]) -> dict[str, Any]:
    spec = LayerSpec.from_json(job["spec"]) if job["spec"] else None
    scenario = BY_NAME[job["scenario"]]
    try:
        return {"figures": scenario.run(spec, Counts(**job["counts"]), Context(**job["context"]))}
    except NotApplicable as exc:
        return {"not_applicable": str(exc)}
    except BenchError as exc:
        return {"error": str(exc).strip().splitlines()[0]}
    except Exception as exc:
        logging.getLogger(__name__).exception("scenario %s failed", scenario.name)
        return {"error": f"{type(exc).__name__}: {exc}".strip().splitlines()[0]}


def main() -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(name)s %(levelname)s %(message)s")
    result = run(json.loads(sys.argv[1]))
    sys.stdout.write(RESULT_MARK + json.dumps(result) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
