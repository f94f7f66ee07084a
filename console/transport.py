"""How the deploy host talks to one web host: commands over Fabric, files over rsync.

One `HostLink` per host lives for a whole deploy, so every phase reuses the same
connections: a Fabric `Connection` (Paramiko) for commands, and an OpenSSH master
connection (ControlMaster) that every rsync of the deploy multiplexes over.

Both verify host keys against the inventory's `known_hosts` and nothing else: an
unknown or changed key is refused (Fabric's default of auto-adding keys is replaced by
Paramiko's RejectPolicy; OpenSSH runs with StrictHostKeyChecking=yes). Every failure
comes back as a `HostError` carrying the command, exit code and the last lines of
output, so a host's failure is data for the report, never a crash of the deploy.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import socket
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import paramiko
from fabric import Connection
from invoke.exceptions import CommandTimedOut, UnexpectedExit

from console.inventory import Host, Inventory

#: Lines of output kept with a failure.
TAIL_LINES = 6


class HostError(Exception):
    """A step failed on one host; `reason` is the one line the report shows."""

    def __init__(self, reason: str, *, exit_code: int | None = None, output: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.exit_code = exit_code
        self.output = output


@dataclass(frozen=True)
class Result:
    stdout: str
    stderr: str
    exit_code: int


def tail(text: str, lines: int = TAIL_LINES) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def q(value: object) -> str:
    """Shell-quote one value for a remote command."""
    return shlex.quote(str(value))


def render(template: str, host: Host, *, quote: bool = True) -> str:
    """Fill a command (values shell-quoted) or URL (values as they are) template."""
    fields = host.fields()
    if quote:
        fields = {k: q(v) for k, v in fields.items()}
    return template.format(**fields)


def _control_dir(inventory: Inventory) -> Path:
    # ControlPath must stay short (a unix socket path); one dir per state dir and user.
    digest = hashlib.sha1(str(inventory.state_dir).encode()).hexdigest()[:10]
    path = Path(tempfile.gettempdir()) / f"dc-ssh-{os.getuid()}-{digest}"
    path.mkdir(mode=0o700, exist_ok=True)
    return path


class HostLink:
    """The deploy's connections to one host, opened on first use and reused."""

    def __init__(self, inventory: Inventory, host: Host) -> None:
        self.inventory = inventory
        self.host = host
        self._conn: Connection | None = None
        self._lock = threading.Lock()
        self._control = _control_dir(inventory) / "%C"

    # -- commands -------------------------------------------------------------------

    def _connection(self) -> Connection:
        with self._lock:
            if self._conn is None:
                inv, host = self.inventory, self.host
                conn = Connection(
                    host.address,
                    user=inv.ssh.user,
                    port=host.port,
                    connect_timeout=inv.timeouts.connect,
                    connect_kwargs={
                        "key_filename": str(inv.ssh.key),
                        "look_for_keys": False,
                        "allow_agent": False,
                        "banner_timeout": inv.timeouts.connect,
                        "auth_timeout": inv.timeouts.connect,
                    },
                )
                conn.client.set_missing_host_key_policy(paramiko.RejectPolicy())
                conn.client.load_host_keys(str(inv.ssh.known_hosts))
                try:
                    conn.open()
                except paramiko.BadHostKeyException:
                    raise HostError(
                        f"host key of {host.address}:{host.port} does not match "
                        f"{inv.ssh.known_hosts}: refused (changed host key)"
                    ) from None
                except paramiko.SSHException as exc:
                    if "not found in known_hosts" in str(exc):
                        raise HostError(
                            f"host key of {host.address}:{host.port} is not in "
                            f"{inv.ssh.known_hosts}: refused (unknown host)"
                        ) from None
                    raise HostError(f"ssh to {host.address}:{host.port} failed: {exc}") from None
                except (socket.timeout, TimeoutError):
                    raise HostError(
                        f"ssh connect to {host.address}:{host.port} timed out after "
                        f"{inv.timeouts.connect:g} s"
                    ) from None
                except OSError as exc:
                    raise HostError(
                        f"ssh connect to {host.address}:{host.port} failed: {exc.strerror or exc}"
                    ) from None
                transport = conn.client.get_transport()
                if transport is not None:
                    transport.set_keepalive(2)
                self._conn = conn
            return self._conn

    def run(self, command: str, *, timeout: float | None = None, what: str = "") -> Result:
        """Run a shell command on the host; a non-zero exit or a timeout is a HostError."""
        limit = timeout or self.inventory.timeouts.command
        conn = self._connection()
        label = what or command.split(" ", 1)[0]
        try:
            r = conn.run(command, hide=True, warn=False, timeout=limit, in_stream=False)
        except UnexpectedExit as exc:
            r = exc.result
            out = tail(r.stderr or r.stdout)
            last = out.splitlines()[-1] if out else ""
            raise HostError(
                f"{label} exited {r.exited}" + (f": {last}" if last else ""),
                exit_code=r.exited,
                output=out,
            ) from None
        except CommandTimedOut:
            self.close()
            raise HostError(f"{label} timed out after {limit:g} s") from None
        except (paramiko.SSHException, EOFError, OSError) as exc:
            self.close()
            raise HostError(f"{label}: connection lost: {exc or type(exc).__name__}") from None
        return Result(r.stdout, r.stderr, r.exited)

    # -- files ----------------------------------------------------------------------

    def ssh_command(self) -> list[str]:
        """The OpenSSH client command rsync uses, sharing one master connection."""
        inv, t = self.inventory, self.inventory.timeouts
        return [
            "ssh",
            "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=yes",
            "-o", f"UserKnownHostsFile={inv.ssh.known_hosts}",
            "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "IdentitiesOnly=yes",
            "-o", f"ConnectTimeout={int(t.connect)}",
            "-o", "ServerAliveInterval=2",
            "-o", f"ServerAliveCountMax={max(2, int(t.connect // 2))}",
            "-o", "ControlMaster=auto",
            "-o", f"ControlPath={self._control}",
            "-o", "ControlPersist=60",
            "-o", "LogLevel=ERROR",
            # curve25519 costs a fraction of the CPU of the post-quantum default per handshake
            "-o", "KexAlgorithms=curve25519-sha256,curve25519-sha256@libssh.org,sntrup761x25519-sha512@openssh.com",
            "-o", "GSSAPIAuthentication=no",
            "-i", str(inv.ssh.key),
            "-p", str(self.host.port),
            "-l", inv.ssh.user,
        ]  # fmt: skip

    def rsync(self, source: Path, dest: str, *options: str, timeout: float | None = None) -> int:
        """rsync a local directory's contents to a path on the host; returns bytes sent."""
        limit = timeout or self.inventory.timeouts.sync
        argv = [
            "rsync", "-a", "--stats", f"--timeout={int(max(limit, 5))}",
            "-e", shlex.join(self.ssh_command()),
            *options,
            f"{source}/",
            f"{self.host.address}:{dest}/",
        ]  # fmt: skip
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=limit, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise HostError(f"rsync to {dest} timed out after {limit:g} s") from None
        if p.returncode != 0:
            out = tail(p.stderr or p.stdout)
            lines = [line for line in out.splitlines() if not line.startswith("rsync error:")]
            # The cause comes first: the receiving host's own error (a full disk) or ssh's,
            # before the sender's consequent "Broken pipe" or "connection unexpectedly closed".
            cause = next((line for line in lines if "[receiver]" in line or line.startswith("ssh:")), None)
            last = cause or (lines[-1] if lines else out.splitlines()[-1] if out else "")
            raise HostError(f"rsync exited {p.returncode}: {last}", exit_code=p.returncode, output=out)
        match = re.search(r"Total bytes sent: ([\d,.]+)", p.stdout)
        return int(re.sub(r"[,.]", "", match.group(1))) if match else 0

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def close_master(self) -> None:
        """End the shared OpenSSH master connection (at the end of a deploy)."""
        subprocess.run(
            [*self.ssh_command(), "-O", "exit", self.host.address],
            capture_output=True,
            timeout=5,
            stdin=subprocess.DEVNULL,
        )
