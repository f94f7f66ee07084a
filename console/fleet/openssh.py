"""The OpenSSH transport, kept for one thing: `invoke bench.deploy --compare` measures the
Fabric transport (console/fleet/transport.py, the default) against it, in one process, on
one lab fleet. Nothing else uses it; when the comparison is no longer needed, it goes.

`OpenSSHLink` is a `Connection` (console/fleet/connection.py): its first use opens an
OpenSSH master connection (ControlMaster); every later command and rsync of the run is a
session multiplexed over it, each a new `ssh` process. The master stays up 60 s after
its last use (ControlPersist), so a `switch` right after a deploy reuses it. Host keys
are verified against the inventory's `known_hosts` only (StrictHostKeyChecking=yes);
ssh and rsync run in their own session, so a Ctrl-C for the deploy never kills a step.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import stat
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from console.config.inventory import Host, Inventory
from console.fleet.connection import (
    HostError,
    Result,
    bytes_sent,
    command_failed,
    rsync_failed,
    rsync_target,
    tail,
)


def _control_dir(inventory: Inventory) -> Path:
    """Where the master connections' sockets live: one private directory per state dir
    and user, under the temp dir because a unix socket's path must stay short.

    The name is predictable, so a directory that is already there must be ours and
    private: another user's could hold a socket that answers for a host unverified.
    """
    digest = hashlib.sha1(str(inventory.state_dir).encode()).hexdigest()[:10]
    path = Path(tempfile.gettempdir()) / f"dc-ssh-{os.getuid()}-{digest}"
    try:
        path.mkdir(mode=0o700, exist_ok=True)
        st = path.lstat()
    except OSError as exc:
        raise HostError(f"{path}: cannot create the ssh control directory: {exc.strerror}") from None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise HostError(
            f"{path}: the ssh control directory is not a private directory of this user; remove it and deploy again"
        )
    return path


#: ssh's own exit status for its failures (connection, authentication, host key).
SSH_FAILED = 255


class OpenSSHLink:
    """The run's one OpenSSH connection to a host, opened on first use and reused
    (a `console.fleet.connection.Connection`)."""

    def __init__(self, inventory: Inventory, host: Host) -> None:
        self.inventory = inventory
        self.host = host
        self._control_path = _control_dir(inventory) / "%C"

    def ssh_command(self) -> list[str]:
        """The OpenSSH client command for this host, sharing one master connection."""
        inv, t = self.inventory, self.inventory.timeouts
        return [
            "ssh",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            f"UserKnownHostsFile={inv.ssh.known_hosts}",
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            f"ConnectTimeout={int(t.connect)}",
            "-o",
            "ServerAliveInterval=2",
            "-o",
            f"ServerAliveCountMax={max(2, int(t.connect // 2))}",
            "-o",
            "ControlMaster=auto",
            "-o",
            f"ControlPath={self._control_path}",
            "-o",
            "ControlPersist=60",
            "-o",
            "LogLevel=ERROR",
            # curve25519 costs a fraction of the CPU of the post-quantum default per handshake
            "-o",
            "KexAlgorithms=curve25519-sha256,curve25519-sha256@libssh.org,sntrup761x25519-sha512@openssh.com",
            "-o",
            "GSSAPIAuthentication=no",
            "-i",
            str(inv.ssh.key),
            "-p",
            str(self.host.port),
            "-l",
            inv.ssh.user,
        ]

    def _ssh_failure(self, stderr: str) -> str | None:
        """The one-line reason when ssh itself failed (not the remote command), else None."""
        where = f"{self.host.address}:{self.host.port}"
        known = self.inventory.ssh.known_hosts
        if "REMOTE HOST IDENTIFICATION HAS CHANGED" in stderr:
            return f"host key of {where} does not match {known}: refused (changed host key)"
        if "Host key verification failed" in stderr:
            return f"host key of {where} is not in {known}: refused (unknown host)"
        lines = [line.strip() for line in stderr.splitlines() if line.strip()]
        if re.search(r"connect to host .* timed out|timed out during banner exchange", stderr):
            return f"ssh connect to {where} timed out after {self.inventory.timeouts.connect:g} s"
        ssh_lines = [
            line
            for line in lines
            if line.startswith(
                ("ssh:", "ssh_", "Connection", "Timeout", "kex_", "Permission denied", "mux_", "Control")
            )
        ]
        if ssh_lines:
            return f"ssh to {where} failed: {ssh_lines[-1].removeprefix('ssh: ')}"
        return None

    def _spawn(
        self, argv: list[str], limit: float, stdin: str | bytes | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ssh or rsync in its own session (see the module docstring), `stdin` fed to it."""
        p = subprocess.run(
            argv,
            capture_output=True,
            timeout=limit,
            input=stdin.encode() if isinstance(stdin, str) else stdin,
            stdin=subprocess.DEVNULL if stdin is None else None,
            start_new_session=True,
        )
        out, err = (p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace"))
        return subprocess.CompletedProcess(p.args, p.returncode, out, err)

    def run(
        self, command: str, *, timeout: float | None = None, what: str = "", stdin: str | bytes | None = None
    ) -> Result:
        """Run a shell command on the host, `stdin` fed to it (never argv: see the module
        docstring of console.fleet.connection); a non-zero exit or a timeout is a HostError."""
        limit = timeout or self.inventory.timeouts.command
        label = what or command.split(" ", 1)[0]
        try:
            p = self._spawn([*self.ssh_command(), "--", self.host.address, command], limit, stdin)
        except subprocess.TimeoutExpired:
            self._drop()  # the link may be dead: the next command gets a fresh connection
            raise HostError(f"{label} timed out after {limit:g} s", timed_out=True) from None
        if p.returncode != 0:
            failure = self._ssh_failure(p.stderr) if p.returncode == SSH_FAILED else None
            if failure:
                raise HostError(f"{label}: {failure}", exit_code=p.returncode, output=tail(p.stderr))
            raise command_failed(label, p.returncode, p.stdout, p.stderr)
        return Result(p.stdout, p.stderr, p.returncode)

    def stream(
        self,
        command: str,
        *,
        timeout: float | None = None,
        what: str = "",
        feed: Iterable[bytes] = (),
        on_line: Callable[[str], None] | None = None,
    ) -> Result:
        """Not for this transport, kept only as bench.deploy's baseline (it measures chunked
        deploys): the tree strategy talks to its hosts over Fabric."""
        raise HostError(f"{what or 'stream'}: the OpenSSH transport does not stream; use the Fabric one", reached=False)

    def rsync(self, source: Path, dest: str, options: Sequence[str] = (), *, timeout: float | None = None) -> int:
        """rsync a local directory's contents to a path on the host; returns bytes sent."""
        limit = timeout or self.inventory.timeouts.sync
        argv = [
            "rsync",
            "-a",
            "--stats",
            f"--timeout={int(max(limit, 5))}",
            "-e",
            shlex.join(self.ssh_command()),
            *options,
            f"{source}/",
            rsync_target(self.host.address, dest),
        ]
        try:
            p = self._spawn(argv, limit)
        except subprocess.TimeoutExpired:
            self._drop()
            raise HostError(f"rsync to {dest} timed out after {limit:g} s") from None
        if p.returncode != 0:
            raise rsync_failed(p.returncode, p.stdout, p.stderr, self._ssh_failure(p.stderr))
        return bytes_sent(p.stdout)

    def _master(self, operation: str) -> subprocess.Popen[bytes]:
        """Send `ssh -O operation` to the host's master connection."""
        return subprocess.Popen(
            [*self.ssh_command(), "-O", operation, self.host.address],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def _drop(self) -> None:
        """After a timeout the connection may be dead: its master stops taking new
        sessions (those in flight end on their own), so the next use opens a fresh one."""
        _wait_all([self._master("stop")], 1.0)

    def close(self) -> None:
        """The end of a run: nothing to do. The master outlives the run by ControlPersist
        seconds on its own, so a `switch` or `--only failed` right after reuses it."""


def _wait_all(procs: list[subprocess.Popen[bytes]], timeout: float) -> None:
    """Wait for local `ssh -O` commands; one that hangs is killed."""
    for proc in procs:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def close_all(links: list[OpenSSHLink]) -> None:
    """End the master connections of many hosts at once (`bench.deploy` does between
    measured deploys, so each pays for its handshakes as a deploy an hour later would)."""
    _wait_all([link._master("exit") for link in links], 5.0)
