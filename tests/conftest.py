"""Shared fixtures: the fleet lab (real sshd hosts; as root each in its own namespaces).

`lab_factory(n)` gives a running lab of n hosts and its inventory path, one lab per size per
test session, named `t<pid>-<n>` so a demo or another test run on the same machine never clashes.
Every lab made here is taken down at the end of the session.
"""

from __future__ import annotations

import os

import pytest

from console.lab import Lab
from support.servers import Receiver


def pytest_configure(config):
    config.addinivalue_line("markers", "lab: uses the fleet lab (real sshd hosts, network namespaces as root)")


@pytest.fixture
def receiver():
    """A real webhook receiver on 127.0.0.1 (see servers.Receiver)."""
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(scope="session")
def lab_session_tag() -> str:
    """Unique per test session (and per xdist worker): part of every lab name made by this session."""
    return f"t{os.getpid()}"


@pytest.fixture(scope="session")
def lab_factory(lab_session_tag, tmp_path_factory):
    labs: dict[int, tuple[Lab, object]] = {}
    inventories = tmp_path_factory.mktemp("lab-inventories")

    def make(n_hosts: int):
        if n_hosts not in labs:
            lab = Lab(f"{lab_session_tag}-{n_hosts}")
            labs[n_hosts] = (lab, lab.up(n_hosts, inventory_path=inventories / f"{lab.name}.yaml"))
        return labs[n_hosts]

    yield make
    for lab, _ in labs.values():
        lab.down()


@pytest.fixture(scope="session")
def lab(lab_factory):
    """A running 4-host lab (a `console.lab.Lab`; its inventory is `lab.inventory_path`)."""
    return lab_factory(4)[0]


@pytest.fixture(scope="session")
def lab_inventory(lab_factory):
    """The inventory path of the 4-host `lab`."""
    return lab_factory(4)[1]
