"""The transports: the OpenSSH one's local safety checks, and what a step feeds a command
on a real lab host (the other SSH paths are tested on the lab by the deploy tests)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from console.config.inventory import Host, Inventory, SSHSettings, load_inventory
from console.fleet.connection import HostError
from console.fleet.openssh import OpenSSHLink, _control_dir
from console.fleet.transport import HostLink


def _inventory(tmp_path: Path) -> Inventory:
    return Inventory(
        path=tmp_path / "lab.yaml",
        environment="lab",
        repo="/srv/repo",
        branch="main",
        deploy_path="/srv/www",
        ssh=SSHSettings("deploy", tmp_path / "key", tmp_path / "known_hosts"),
        hosts=(Host("web01", "127.0.0.1"),),
        state_dir=tmp_path / "state",
    )


def test_the_control_directory_is_private(tmp_path: Path) -> None:
    inv = _inventory(tmp_path)
    path = _control_dir(inv)
    try:
        assert path.is_dir() and path.stat().st_mode & 0o777 == 0o700
        assert path.stat().st_uid == os.getuid()
    finally:
        path.rmdir()


def test_a_control_directory_others_can_enter_is_refused(tmp_path: Path) -> None:
    """Its name is predictable: one made by somebody else first could answer for any host."""
    inv = _inventory(tmp_path)
    path = _control_dir(inv)
    try:
        path.chmod(0o755)
        with pytest.raises(HostError, match="not a private directory of this user; remove it"):
            OpenSSHLink(inv, inv.hosts[0])
    finally:
        path.rmdir()


@pytest.mark.lab
def test_stdin_reaches_the_command_and_never_its_argv(lab_inventory) -> None:
    """A secret goes to a command through stdin: the remote process's command line (what
    `ps` shows anyone on the host) holds the command, not the secret."""
    inv = load_inventory(lab_inventory)
    link = HostLink(inv, inv.hosts[0])
    secret = "s3cret-token-for-the-test"
    out = link.run("read -r line; cat /proc/$$/cmdline | tr '\\0' ' '; echo; echo \"$line\"", stdin=secret + "\n")
    cmdline, line = out.stdout.splitlines()
    assert line == secret and secret not in cmdline
    assert link.run("cat").stdout == ""  # no stdin: an empty one, never the terminal's
