"""A node in its own process, as model developers run it: a handler that raises does not
kill it, Ctrl-C stops it cleanly, and a task it claimed resumes on the next start."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Callable

from support import Proc, wait_until, write_module

import flownet

NODE_SCRIPT = """
import sys
from pathlib import Path
import flownet

home, endpoint = Path(sys.argv[1]), sys.argv[2]
ledger = flownet.Ledger.open(home / "ledger.db")
node = flownet.Node(ledger, flownet.Account.load(ledger, "node"), name="py", endpoint=endpoint)

@node.model("upper", price="0.5", kind="text-generation")
def upper(prompt, params):
    # A flag file makes the model fail, as a bug or a missing GPU would.
    if (home / "broken").exists():
        raise ValueError(f"cannot upper-case {prompt!r} today")
    return prompt.upper()

node.serve(interval_ms=50)
print("serve returned", flush=True)
"""


def start_node(spawn: Callable[..., Proc], home: Path, endpoint: str) -> Proc:
    script = write_module(home, "node_main", NODE_SCRIPT)
    proc: Proc = spawn([sys.executable, str(script), str(home), endpoint])
    proc.wait_for_log("serving upper")
    return proc


def test_node_survives_a_raising_handler_stops_on_ctrl_c_and_resumes_claimed_tasks(
    tmp_path: Path, ledger: flownet.Ledger, endpoint: str, spawn: Callable[..., Proc]
) -> None:
    flownet.Account.create(ledger, "node")
    client = flownet.Client(ledger, flownet.Account.create(ledger, "alice"))
    (tmp_path / "broken").touch()
    node = start_node(spawn, tmp_path, endpoint)

    failing = client.submit("hello", "upper")
    node.wait_for_log("task 1 failed", timeout=30)
    log = node.stderr()
    assert "Traceback (most recent call last)" in log and "ValueError: cannot upper-case 'hello' today" in log
    wait_until(lambda: "failed: " in node.stderr() and node.stderr().count("task 1 failed") >= 3, what="3 attempts")
    assert node.popen.poll() is None, "the node keeps running after its handler raised"
    assert failing.status == "claimed", "after 3 attempts the task is left claimed (to expire or resume)"

    # Ctrl-C: serve() stops cleanly and returns; the process exits normally.
    node.popen.send_signal(signal.SIGINT)
    assert node.popen.wait(timeout=30) == 0, node.stderr()
    assert node.popen.stdout is not None and node.popen.stdout.read() == b"serve returned\n"
    assert "claimed tasks resume on the next start" in node.stderr()

    # Fixed and restarted, the node resumes the task it had claimed and delivers it.
    (tmp_path / "broken").unlink()
    restarted = start_node(spawn, tmp_path, endpoint)
    output = failing.wait(timeout=30)
    assert output.text() == "HELLO"
    assert "resuming claimed task 1" in restarted.stderr()
    assert client.submit("again", "upper").wait(timeout=30).text() == "AGAIN"
