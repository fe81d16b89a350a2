"""Blocking calls release the GIL: other Python threads keep running meanwhile."""

from __future__ import annotations

import threading
import time
from typing import Any, Dict, List

import pytest

import flownet


def spin_rate(seconds: float, during: Any = None) -> float:
    """How many times a Python loop in another thread counts per second, alone or while
    `during()` blocks the main thread."""
    count: List[int] = [0]
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            count[0] += 1

    thread = threading.Thread(target=spin)
    thread.start()
    time.sleep(0.05)
    start, before = time.monotonic(), count[0]
    if during is None:
        time.sleep(seconds)
    else:
        during()
    rate = (count[0] - before) / (time.monotonic() - start)
    stop.set()
    thread.join()
    return rate


def test_a_python_thread_keeps_running_while_task_wait_blocks(ledger: flownet.Ledger, endpoint: str) -> None:
    node = flownet.Node(ledger, flownet.Account.create(ledger, "node"), name="idle", endpoint=endpoint)

    @node.model("m", price="0.1", kind="text-generation")
    def m(prompt: str, params: Dict[str, Any]) -> str:
        return prompt

    node.register()  # registered but not serving: the task stays open
    task = flownet.Client(ledger, flownet.Account.create(ledger, "alice")).submit("x", "m")

    def wait() -> None:
        with pytest.raises(TimeoutError, match="still open"):
            task.wait(timeout=1.0)

    alone = spin_rate(1.0)
    while_waiting = spin_rate(1.0, during=wait)
    # Holding the GIL through the wait would stop the other thread almost completely.
    assert while_waiting > 0.3 * alone, f"{while_waiting:.0f}/s while waiting vs {alone:.0f}/s alone"
