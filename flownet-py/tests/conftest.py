"""Fixtures for the tests of the installed `flownet` wheel."""

from __future__ import annotations

import sysconfig
from pathlib import Path
from typing import Callable, Iterator, List, Optional

import pytest
from support import Proc, free_port

import flownet


def pytest_configure(config: pytest.Config) -> None:
    # The suite tests the wheel pip installed, never the source tree.
    installed = Path(sysconfig.get_paths()["purelib"]).resolve()
    here = Path(flownet.__file__).resolve()
    if installed not in here.parents:
        raise pytest.UsageError(f"flownet is imported from {here}, not from the installed wheel in {installed}")


@pytest.fixture
def ledger(tmp_path: Path) -> flownet.Ledger:
    return flownet.Ledger.open(tmp_path / "ledger.db", create=True)


@pytest.fixture
def endpoint() -> str:
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., Proc]]:
    """Starts child processes that are killed when the test ends."""
    procs: List[Proc] = []

    def start(args: List[str], env: Optional[dict] = None) -> Proc:
        p = Proc(args, tmp_path, env)
        procs.append(p)
        return p

    yield start
    for p in procs:
        p.close()
