"""A node in its own process, as model developers run it: a handler that raises does not
kill it (after its last try the task is declined and refunded), a task it had claimed
when it was killed resumes on the next start, and Ctrl-C stops it cleanly."""

from __future__ import annotations

import signal
import sys
from decimal import Decimal
from pathlib import Path
from typing import Callable

from support import Proc, write_module

import flownet

NODE_SCRIPT = """
import sys
import time
from pathlib import Path
import flownet

home, endpoint = Path(sys.argv[1]), sys.argv[2]
ledger = flownet.Ledger.open(home / "ledger.db")
node = flownet.Node(ledger, flownet.Account.load(ledger, "node"), name="py", endpoint=endpoint)

@node.model("upper", price="0.5", kind="text-generation")
def upper(prompt, params):
    # A flag file makes the model fail, as a bug or a missing GPU would; another holds
    # it mid-run, so the process can be killed with the task claimed.
    if (home / "broken").exists():
        raise RuntimeError(f"cannot upper-case {prompt!r} today")
    while (home / "hold").exists():
        time.sleep(0.05)
    return prompt.upper()

node.serve(interval_ms=50)
print("serve returned", flush=True)
"""


def start_node(spawn: Callable[..., Proc], home: Path, endpoint: str) -> Proc:
    script = write_module(home, "node_main", NODE_SCRIPT)
    proc: Proc = spawn([sys.executable, str(script), str(home), endpoint])
    proc.wait_for_log("serving upper")
    return proc


def test_node_survives_a_raising_handler_resumes_claimed_tasks_and_stops_on_ctrl_c(
    tmp_path: Path, ledger: flownet.Ledger, endpoint: str, spawn: Callable[..., Proc]
) -> None:
    flownet.Account.create(ledger, "node")
    alice = flownet.Account.create(ledger, "alice")
    client = flownet.Client(ledger, alice)
    funded = alice.balance()
    (tmp_path / "broken").touch()
    node = start_node(spawn, tmp_path, endpoint)

    # A handler that raises is retried; after the last try the task is declined and the
    # escrow comes back, and the node keeps running.
    failing = client.submit("hello", "upper")
    assert alice.balance() == funded - Decimal("0.5")
    node.wait_for_log("task 1 failed", timeout=30)
    log = node.stderr()
    assert "Traceback (most recent call last)" in log and "RuntimeError: cannot upper-case 'hello' today" in log
    node.wait_for_log("declined task 1", timeout=30)
    assert node.stderr().count("task 1 failed") == 3, node.stderr()
    assert node.popen.poll() is None, "the node keeps running after its handler raised"
    assert client.task(failing.id).status == "declined"
    assert alice.balance() == funded

    # Killed while its handler runs, the node leaves the task claimed; started again,
    # it resumes that task and delivers it.
    (tmp_path / "broken").unlink()
    (tmp_path / "hold").touch()
    held = client.submit("again", "upper")
    node.wait_for_log("running upper for task 2", timeout=30)
    node.popen.send_signal(signal.SIGKILL)
    node.popen.wait(timeout=30)
    assert client.task(held.id).status == "claimed"
    (tmp_path / "hold").unlink()
    restarted = start_node(spawn, tmp_path, endpoint)
    assert held.wait(timeout=30).text() == "AGAIN"
    assert "resuming claimed task 2" in restarted.stderr()
    assert client.submit("more", "upper").wait(timeout=30).text() == "MORE"

    # Ctrl-C: serve() stops cleanly and returns; the process exits normally.
    restarted.popen.send_signal(signal.SIGINT)
    assert restarted.popen.wait(timeout=30) == 0, restarted.stderr()
    assert restarted.popen.stdout is not None and restarted.popen.stdout.read() == b"serve returned\n"
    assert "claimed tasks resume on the next start" in restarted.stderr()
