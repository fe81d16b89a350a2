"""``python -m flownet`` and the ``flownet`` console script: the Rust command itself."""

from __future__ import annotations

import signal
import sys

from flownet._flownet import run_cli


def main() -> int:
    """Runs the ``flownet`` command with this process's arguments; returns its exit code."""
    # Long-running commands (node serve, task wait) handle Ctrl-C in Rust, exactly as
    # the binary does; Python's handler would only raise KeyboardInterrupt afterwards.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    return run_cli(["flownet", *sys.argv[1:]])


if __name__ == "__main__":
    sys.exit(main())
