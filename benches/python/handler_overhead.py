#!/usr/bin/env python3
"""The marketplace's overhead per task: a Python-handler node vs the same model served
natively by the Rust node, measured in one go.

Both nodes serve the terrain model (the same weights, models/terrain-diffusion-128):

  native  `flownet node serve` (the Rust engine, ONNX Runtime through the `ort` crate)
  python  examples/python/terrain_node.py (onnxruntime and numpy in a Python function,
          called by the Rust node runtime with the GIL taken only for the call)

For each, one node process runs at a time, and a client in this process pays for
--tasks prompts one after another: submit, then wait until the output is delivered,
fetched and checked against its SHA-256. The node logs each delivery with the time its
engine took ("inference N ms": the model call with its pre- and post-processing, for
the Python node the function call with the GIL and the conversion of its result to
PNG). A task's end-to-end time minus its inference time is the marketplace overhead:
signing and applying submit, claim and fulfil on the SQLite ledger, the node's poll
interval, storing the output (fsync), fetching and checking it.

What the Python node's inference time holds besides the function itself (a blocking
thread, taking the GIL, converting the prompt and params, encoding the returned array
as PNG) is measured in-process: the same function called directly, then through
flownet.Node.infer (the engine the node runs), alternately, --tasks times.

One JSON object per variant goes to stdout, then the hand-off and a summary:

    {"variant": "python", "tasks": 30, "threads": 2, "e2e_ms_p50": ...,
     "inference_ms_p50": ..., "overhead_ms_p50": ...}

Usage (from the repo root, after scripts/setup.sh and scripts/test-python.sh):
    .venv/bin/python benches/python/handler_overhead.py --tasks 30 --threads 2
"""

from __future__ import annotations

import argparse
import json
import re
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List

import flownet

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "python" / "terrain_node.py"
NATIVE_MODEL = "terrain-diffusion-128"
PYTHON_MODEL = "terrain-py"
# Both nodes look for tasks this often, and the client polls the ledger this often, so
# that polling adds little to what is measured.
NODE_INTERVAL_MS = 5
CLIENT_POLL_S = 0.002


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(values: List[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def wait_for(path: Path, text: str, proc: "subprocess.Popen[bytes]", timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in path.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the node did not start:\n{path.read_text(errors='replace')}")
        time.sleep(0.05)


def run_tasks(client: flownet.Client, model: str, node: str, count: int, tag: str) -> Dict[int, float]:
    """End-to-end milliseconds by task id."""
    times = {}
    for i in range(count):
        start = time.perf_counter()
        task = client.submit(f"{tag} prompt {i}", model, node=node)
        output = task.wait(timeout=120, poll_interval=CLIENT_POLL_S)
        times[task.id] = (time.perf_counter() - start) * 1000.0
        assert output.mime == "image/png" and len(output.bytes) > 1000
    return times


DELIVERED = re.compile(r"delivered task (\d+): .*, inference (\d+) ms")


def inference_ms(log: Path) -> Dict[int, float]:
    """The engine time of each delivered task, from the node's log."""
    return {int(m[1]): float(m[2]) for m in DELIVERED.finditer(log.read_text(errors="replace"))}


def measure(
    variant: str,
    command: List[str],
    env: Dict[str, str],
    ready: str,
    client: flownet.Client,
    model: str,
    node: str,
    args: argparse.Namespace,
    workdir: Path,
) -> Dict[str, Any]:
    log = workdir / f"{variant}.log"
    with open(log, "wb") as log_file:
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log_file, env={**os.environ, **env})
        try:
            wait_for(log, ready, proc)
            run_tasks(client, model, node, args.warmup, f"{variant} warm-up")
            e2e = run_tasks(client, model, node, args.tasks, variant)
        finally:
            # Ctrl-C, as a person stops a node: both stop cleanly.
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=30)
    engine = inference_ms(log)
    missing = set(e2e) - set(engine)
    if missing:
        raise SystemExit(f"{variant}: no delivery logged for tasks {sorted(missing)}")
    overhead = [e2e[t] - engine[t] for t in e2e]
    return {
        "variant": variant,
        "tasks": args.tasks,
        "threads": args.threads,
        "e2e_ms_p50": round(statistics.median(e2e.values()), 2),
        "e2e_ms_p90": round(percentile(list(e2e.values()), 0.9), 2),
        "inference_ms_p50": round(statistics.median(engine[t] for t in e2e), 2),
        "overhead_ms_p50": round(statistics.median(overhead), 2),
        "overhead_ms_p90": round(percentile(overhead, 0.9), 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=30, help="timed tasks per variant (default 30)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed tasks first (default 3)")
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads (default 2)")
    parser.add_argument(
        "--models", type=Path, default=Path(os.environ.get("FLOWNET_MODELS", REPO / "models")), help="models dir"
    )
    args = parser.parse_args()
    if args.tasks < 1 or args.warmup < 0 or args.threads < 1:
        parser.error("--tasks and --threads must be at least 1, --warmup at least 0")
    if not (args.models / NATIVE_MODEL / "model.onnx").exists() or not os.environ.get("ORT_DYLIB_PATH"):
        print("the models or ONNX Runtime are missing: run `eval \"$(scripts/setup.sh)\"` first", file=sys.stderr)
        return 1
    flownet_cmd = shutil.which("flownet", path=str(Path(sys.executable).parent)) or "flownet"
    env = {"FLOWNET_MODELS": str(args.models), "FLOWNET_THREADS": str(args.threads)}

    workdir = Path(tempfile.mkdtemp(prefix="flownet-bench-"))
    try:
        ledger = flownet.Ledger.open(workdir, create=True)
        client = flownet.Client(ledger, flownet.Account.create(ledger, "alice"))
        native = flownet.Account.create(ledger, "native")
        python = flownet.Account.create(ledger, "python")
        native_endpoint, python_endpoint = f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"
        base = [flownet_cmd, "--data-dir", str(workdir), "--models-dir", str(args.models)]
        subprocess.run(
            [*base, "--key", "native", "node", "register", "--name", "native", "--endpoint", native_endpoint,
             "--model", f"{NATIVE_MODEL}=0.5"],
            check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip

        results = {
            "native": measure(
                "native",
                [*base, "--key", "native", "node", "serve", "--interval-ms", str(NODE_INTERVAL_MS),
                 "--threads", str(args.threads)],
                env, "serving", client, NATIVE_MODEL, native.address, args, workdir,
            ),  # fmt: skip
            "python": measure(
                "python",
                [sys.executable, str(EXAMPLE), "--data-dir", str(workdir), "--key", "python",
                 "--endpoint", python_endpoint, "--interval-ms", str(NODE_INTERVAL_MS)],
                env, "serving", client, PYTHON_MODEL, python.address, args, workdir,
            ),  # fmt: skip
        }
        for result in results.values():
            print(json.dumps(result), flush=True)

        os.environ.update(env)
        sys.path.insert(0, str(EXAMPLE.parent))
        import terrain_node  # noqa: E402 (loads its onnxruntime session on import)

        local = terrain_node.build_node()
        for i in range(args.warmup):
            local.infer(PYTHON_MODEL, f"warm-up {i}")
        direct, through_engine = [], []
        for i in range(args.tasks):
            start = time.perf_counter()
            terrain_node.terrain(f"local {i}", {})
            middle = time.perf_counter()
            local.infer(PYTHON_MODEL, f"local {i}")
            direct.append((middle - start) * 1000.0)
            through_engine.append((time.perf_counter() - middle) * 1000.0)
        handoff = [e - d for d, e in zip(direct, through_engine)]
        print(
            json.dumps(
                {
                    "python_function_ms_p50": round(statistics.median(direct), 2),
                    "through_engine_ms_p50": round(statistics.median(through_engine), 2),
                    "handoff_ms_p50": round(statistics.median(handoff), 2),
                }
            ),
            flush=True,
        )
        print(
            json.dumps(
                {
                    "summary": "python handler minus native, per task (p50)",
                    "extra_overhead_ms": round(
                        float(results["python"]["overhead_ms_p50"]) - float(results["native"]["overhead_ms_p50"]), 2
                    ),
                    "extra_e2e_ms": round(
                        float(results["python"]["e2e_ms_p50"]) - float(results["native"]["e2e_ms_p50"]), 2
                    ),
                    "node_interval_ms": NODE_INTERVAL_MS,
                    "client_poll_ms": CLIENT_POLL_S * 1000,
                }
            )
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
