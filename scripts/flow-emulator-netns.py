#!/usr/bin/env python3
"""Runs a Flow emulator in a network namespace of its own and forwards its gRPC, REST
and admin ports from 127.0.0.1 here.

    scripts/flow-emulator-netns.py EMULATOR [emulator args...]

The emulator (v1.21.0 at least) always starts its debugger, and binds it to every
interface whatever `--host` says (server/debugger/debugger.go listens on ":port"); it
has no flag to turn it off. So the test harnesses never run it in their own network
namespace: this script starts it in a fresh one that holds only its own loopback
(`unshare --net`), so nothing it listens on, debugger included, is reachable from any
other namespace. The ports named by `--port`, `--rest-port` and `--admin-port` are
bound here on 127.0.0.1 before the emulator starts, and each connection to them is
carried to the same port inside the namespace. The debugger is not forwarded.

Only the Python standard library; needs root (or CAP_SYS_ADMIN) for the namespace, and
`ip` (iproute2) to bring the namespace's loopback up. The emulator dies with this
process (PR_SET_PDEATHSIG), so a harness that kills this process kills both.
"""

from __future__ import annotations

import ctypes
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time

CLONE_NEWNET = 0x40000000
PR_SET_PDEATHSIG = 1
FORWARDED = ("--port", "-p", "--rest-port", "--admin-port")
DEFAULTS = {"--port": 3569, "--rest-port": 8888, "--admin-port": 8080}

libc = ctypes.CDLL(None, use_errno=True)


def die(msg: str) -> "None":
    print(f"flow-emulator-netns: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


def ports_of(args: list[str]) -> list[int]:
    found = dict(DEFAULTS)
    for i, a in enumerate(args):
        for flag in FORWARDED:
            if a == flag and i + 1 < len(args):
                found["--port" if flag == "-p" else flag] = int(args[i + 1])
            elif a.startswith(flag + "="):
                found["--port" if flag == "-p" else flag] = int(a.split("=", 1)[1])
    return sorted(set(found.values()))


def pipe(a: socket.socket, b: socket.socket) -> None:
    """Copies bytes both ways until either side closes."""
    sel = selectors.DefaultSelector()
    sel.register(a, selectors.EVENT_READ, b)
    sel.register(b, selectors.EVENT_READ, a)
    try:
        while True:
            for key, _ in sel.select():
                data = key.fileobj.recv(65536)
                if not data:
                    return
                key.data.sendall(data)
    except OSError:
        pass
    finally:
        a.close()
        b.close()


def serve(listener: socket.socket, port: int) -> None:
    while True:
        try:
            client, _ = listener.accept()
        except OSError:
            return
        try:
            # This process is inside the emulator's namespace now (see main): new
            # sockets connect there, while the listener stays bound where it was made.
            upstream = socket.create_connection(("127.0.0.1", port), timeout=10)
            upstream.settimeout(None)
        except OSError:
            client.close()
            continue
        threading.Thread(target=pipe, args=(client, upstream), daemon=True).start()


def main() -> None:
    if len(sys.argv) < 2:
        die("usage: flow-emulator-netns.py EMULATOR [emulator args...]")
    emulator, args = sys.argv[1], sys.argv[2:]
    ports = ports_of(args)
    listeners = []
    for port in ports:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen(64)
        listeners.append((s, port))

    def deathsig() -> None:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)

    own_ns = os.readlink("/proc/self/ns/net")
    child = subprocess.Popen(
        ["unshare", "--net", "--", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", emulator, *args],
        stdin=subprocess.DEVNULL,
        preexec_fn=deathsig,
    )
    # Wait until the child is in its own namespace (unshare has run).
    deadline = time.monotonic() + 10
    while True:
        if child.poll() is not None:
            die(f"the emulator exited {child.returncode} (unshare --net needs root)")
        try:
            if os.readlink(f"/proc/{child.pid}/ns/net") != own_ns:
                break
        except OSError:
            pass
        if time.monotonic() > deadline:
            child.kill()
            die("the emulator's network namespace did not appear")
        time.sleep(0.01)
    fd = os.open(f"/proc/{child.pid}/ns/net", os.O_RDONLY)
    # Still one thread: the whole process moves into the emulator's namespace.
    if libc.setns(fd, CLONE_NEWNET) != 0:
        child.kill()
        die(f"setns failed: {os.strerror(ctypes.get_errno())}")
    os.close(fd)
    for s, port in listeners:
        threading.Thread(target=serve, args=(s, port), daemon=True).start()

    def stop(signum: int, _frame: object) -> None:
        child.terminate()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    sys.exit(child.wait())


if __name__ == "__main__":
    main()
