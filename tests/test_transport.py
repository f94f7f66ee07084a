"""The transports: the OpenSSH one's local safety checks; the Fabric one's host keys (the
known_hosts markers, a revoked key), that a deploy starts no ssh client, and what a step
feeds a command on a real lab host (the other SSH paths are tested on the lab by the
deploy tests)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import fabric
import paramiko
import pytest

from console.config.inventory import Host, Inventory, SSHSettings, load_inventory
from console.fleet import transport
from console.fleet.connection import HostError
from console.fleet.hostkeys import known_hosts, lookup_name
from console.fleet.openssh import OpenSSHLink, _control_dir
from console.fleet.relay import rsync_argv
from console.fleet.transport import CONFIG, HostLink


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


@pytest.mark.lab
def test_connections_never_write_to_the_shared_fabric_config(lab_inventory) -> None:
    """`fabric.Connection()` writes to its config; on a shared one that write re-merges it
    while other hosts' threads read it (a deploy failed a host with "No attribute or config
    key found"). Each connection has its own copy; the shared one stays unmodified."""
    inv = load_inventory(lab_inventory)
    links = [HostLink(inv, host) for host in inv.hosts[:2]]
    configs = [link.open().config for link in links]
    assert CONFIG._modifications == {} and all(c is not CONFIG for c in configs)
    assert configs[0] is not configs[1]
    assert [link.run("echo ok").stdout for link in links] == ["ok\n", "ok\n"]


@pytest.mark.lab
def test_handshakes_at_once_are_bounded_and_every_host_connects(lab_inventory, monkeypatch) -> None:
    """`DIALS` bounds the SSH handshakes in flight (200 at once through the lab's 1 Mbit/s
    push link lost hosts to the connect limit); the hosts beyond it wait their turn and
    connect."""
    inv = load_inventory(lab_inventory)
    monkeypatch.setattr(transport, "DIALS", threading.BoundedSemaphore(2))
    handshake = fabric.Connection.open
    lock, at_once, most = threading.Lock(), 0, 0

    def counted(self: fabric.Connection) -> None:
        nonlocal at_once, most
        if self.is_connected:  # each command's own call: nothing to count
            return handshake(self)
        with lock:
            at_once += 1
            most = max(most, at_once)
        try:
            time.sleep(0.2)  # long enough for all four to be dialing at once, were they let
            return handshake(self)
        finally:
            with lock:
                at_once -= 1

    monkeypatch.setattr(fabric.Connection, "open", counted)
    links = [HostLink(inv, host) for host in inv.hosts]
    try:
        with ThreadPoolExecutor(len(links)) as pool:
            said = list(pool.map(lambda link: link.run("echo ok").stdout, links))
    finally:
        for link in links:
            link.close()
    assert said == ["ok\n"] * len(links) and len(links) == 4
    assert most == 2


def test_connections_prefer_aes_gcm(lab_inventory) -> None:
    inv = load_inventory(lab_inventory)
    link = HostLink(inv, inv.hosts[0])
    try:
        transport = link.open().transport
        assert (transport.local_cipher, transport.remote_cipher) == ("aes128-gcm@openssh.com",) * 2
    finally:
        link.close()


def test_the_fabric_config_reads_and_writes_as_invokes_own() -> None:
    """The root's `_root` and `_keypath` (given so that a section read costs no error
    message) mean what their absence meant: a section's reads and writes land in the root."""
    import fabric

    ours, stock = CONFIG.clone(), fabric.Config(lazy=True, overrides={"run": {"hide": True, "warn": True}})
    assert ours.run._root is ours and ours.run._keypath == ("run",)
    assert (ours.run.hide, ours.run.warn, ours.run.echo) == (stock.run.hide, stock.run.warn, stock.run.echo)
    ours.run.echo = stock.run.echo = True
    assert ours._modifications == stock._modifications == {"run": {"echo": True}}
    assert ours.run.echo is True and CONFIG.run.echo is False


# -- the Fabric transport: host keys, no ssh client ------------------------------------------


def _key_line(name: str) -> tuple[str, str]:
    """A fresh ed25519 public key as a known_hosts line for `name`, and its key part."""
    from console.lab.keys import new_keypair

    public = new_keypair().public
    return f"{name} {public}\n", public


def test_known_hosts_markers_are_read_line_by_line(tmp_path: Path) -> None:
    """Paramiko's loader fails on a whole file at an @ marker; ours trusts plain lines,
    skips what it cannot read, and never trusts a revoked key."""
    plain, _ = _key_line("198.18.0.2")
    other, revoked = _key_line("198.18.0.3")
    path = tmp_path / "known_hosts"
    path.write_text(f"# a comment\n{plain}{other}@revoked * {revoked}\n198.18.0.4 ssh-ed25519 not-base64!\n\n")
    known = known_hosts(path)
    assert known.trusted.lookup("198.18.0.2") is not None
    client = paramiko.SSHClient()
    known.install(client, "198.18.0.3")  # its only key is revoked: nothing trusted for it
    assert client.get_host_keys().lookup("198.18.0.3") is None
    assert len(known.revoked) == 1


def test_a_known_hosts_file_with_a_cert_authority_is_refused_in_one_line(tmp_path: Path) -> None:
    plain, public = _key_line("198.18.0.2")
    path = tmp_path / "known_hosts"
    path.write_text(f"{plain}@cert-authority *.example.com {public}\n")
    with pytest.raises(HostError) as caught:
        known_hosts(path)
    assert caught.value.reason.startswith(f"{path}:2: @cert-authority is not supported")
    assert "\n" not in caught.value.reason


@pytest.mark.lab
def test_a_revoked_host_key_is_refused(lab_inventory, tmp_path: Path) -> None:
    inv = load_inventory(lab_inventory)
    host = inv.hosts[0]
    name = lookup_name(host.address, host.port)
    lines = inv.ssh.known_hosts.read_text().splitlines()
    line = next(line for line in lines if line.split()[0] == name)
    known = tmp_path / "known_hosts"
    known.write_text("\n".join([*lines, "@revoked * " + " ".join(line.split()[1:3])]) + "\n")
    revoked = dataclasses.replace(inv, ssh=dataclasses.replace(inv.ssh, known_hosts=known))
    with pytest.raises(HostError) as caught:
        HostLink(revoked, host).run("true", what="probe")
    assert (
        caught.value.reason
        == f"probe: host key of {host.address}:{host.port} is revoked in {known}: refused (revoked host key)"
    )


@pytest.mark.lab
def test_no_ssh_client_talks_to_a_host_in_a_default_deploy(lab_factory, tmp_path, monkeypatch) -> None:
    """An `ssh` first on PATH records every start: a whole deploy (rsync included) starts
    none. The control: the OpenSSH transport trips over it at once."""
    from support.fleet import deploy, make_fleet

    trap = tmp_path / "bin"
    trap.mkdir()
    log = tmp_path / "ssh-started"
    (trap / "ssh").write_text(f'#!/bin/sh\necho "$@" >> {log}\nexit 255\n')
    (trap / "ssh").chmod(0o755)
    fleet = make_fleet(lab_factory, 2, tmp_path / "fleet")
    monkeypatch.setenv("PATH", f"{trap}:{os.environ['PATH']}")
    done = deploy(fleet.inventory())
    assert done.result == "ok", done
    assert not log.exists(), log.read_text()
    inv = fleet.inventory()
    with pytest.raises(HostError):
        OpenSSHLink(inv, inv.hosts[0]).run("true")
    assert log.exists()


@pytest.mark.lab
def test_a_command_past_its_limit_fails_in_time_and_the_connection_stays(lab_inventory) -> None:
    inv = load_inventory(lab_inventory)
    link = HostLink(inv, inv.hosts[0])
    try:
        t0 = time.monotonic()
        with pytest.raises(HostError) as caught:
            link.run("sleep 10", timeout=1, what="nap")
        assert caught.value.reason == "nap timed out after 1 s" and time.monotonic() - t0 < 3
        assert link.run("echo still here").stdout == "still here\n"
    finally:
        link.close()


@pytest.mark.lab
def test_rsync_goes_through_socat_where_the_kernel_refuses_pidfd_getfd(lab_inventory, tmp_path, monkeypatch) -> None:
    """The fallback for kernels older than 5.6 or sandboxes without ptrace: the same bytes, relayed."""
    from console.fleet import relay

    def refused(pid: int, fd: int) -> int:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(relay, "_take_fd", refused)
    inv = load_inventory(lab_inventory)
    link = HostLink(inv, inv.hosts[0])
    source = tmp_path / "tree"
    source.mkdir()
    (source / "hello.txt").write_text("hello over socat\n")
    dest = f"{inv.hosts[0].deploy_path}/relay-test"
    try:
        assert link.rsync(source, dest, ["--mkpath"]) > 0
        assert link.run(f"cat {dest}/hello.txt").stdout == "hello over socat\n"
    finally:
        link.run(f"rm -rf {dest}")
        link.close()


@pytest.mark.parametrize("address", ["198.18.0.5", "::1", "fd00::5"])
def test_rsync_hands_the_relay_the_host_also_for_an_ipv6_address(tmp_path: Path, address: str) -> None:
    """rsync reads `::1:/srv/` as a daemon address and never starts its remote shell; in
    brackets it hands the shell the bare address, which the relay checks against its host."""
    shell = tmp_path / "rsh"
    shell.write_text('#!/bin/sh\necho "$1" > "${0%/*}/host"\nexit 1\n')
    shell.chmod(0o755)
    (tmp_path / "src").mkdir()
    argv = rsync_argv(tmp_path / "src", address, "/srv/shop/assets", (), 5)
    argv[argv.index("-e") + 1] = str(shell)
    subprocess.run(argv, capture_output=True, timeout=10)
    assert (tmp_path / "host").read_text().strip() == address
