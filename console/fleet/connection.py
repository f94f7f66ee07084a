"""What a step needs from a host: the transport seam.

The pipeline's steps reach a host only through a `Connection`: run a command, talk to a
long one (`stream`: feed its stdin, read its lines as they come), rsync a directory,
close. The pipeline receives a `Connect` (inventory, host -> Connection) and makes one
connection per host per run; the Fabric `transport.HostLink` is the default.
So one transport can take another's place without a step changing, and the failure
policy can be tested against a fake fleet built from these same types.

`Result` and `HostError` are the currency. A host's failure is a `HostError` that
carries the one line the report shows, the exit code and the last lines of output: data
for the report, never a crash of the deploy. Secrets go to a command through `stdin`,
never through its argv (which any process on either machine can read) or a log.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from console.config.inventory import Host, Inventory

#: Lines of output kept with a failure.
TAIL_LINES = 6


class HostError(Exception):
    """A step failed on one host; `reason` is the one line the report shows. `reached` is
    False when the host was never reached (refused, unreachable): nothing of it ran there.
    `timed_out`: the command ran past its limit on a connection that is still alive (a
    slow host, not a lost one)."""

    def __init__(
        self,
        reason: str,
        *,
        exit_code: int | None = None,
        output: str = "",
        reached: bool = True,
        timed_out: bool = False,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.exit_code = exit_code
        self.output = output
        self.reached = reached
        self.timed_out = timed_out


@dataclass(frozen=True)
class Result:
    """What a command that exited 0 printed."""

    stdout: str
    stderr: str
    exit_code: int


def tail(text: str, lines: int = TAIL_LINES) -> str:
    """The last `lines` lines of `text` (what a failure keeps of a command's output)."""
    return "\n".join(text.strip().splitlines()[-lines:])


def command_failed(label: str, exit_code: int, stdout: str, stderr: str) -> HostError:
    """A command that exited non-zero: its code and the last line it printed."""
    out = tail(stderr or stdout)
    last = out.splitlines()[-1] if out else ""
    return HostError(f"{label} exited {exit_code}" + (f": {last}" if last else ""), exit_code=exit_code, output=out)


def rsync_failed(exit_code: int, stdout: str, stderr: str, link_failure: str | None) -> HostError:
    """An rsync that exited non-zero. The cause comes first: the connection's failure, or
    the receiving host's own error (a full disk), before the sender's consequent "Broken
    pipe" or "connection unexpectedly closed"."""
    out = tail(stderr or stdout)
    lines = [line for line in out.splitlines() if not line.startswith("rsync error:")]
    cause = link_failure or next((line for line in lines if "[receiver]" in line), None)
    last = cause or (lines[-1] if lines else out.splitlines()[-1] if out else "")
    return HostError(f"rsync exited {exit_code}: {last}", exit_code=exit_code, output=out)


def rsync_target(address: str, dest: str) -> str:
    """rsync's `host:path/` for a directory on a host. An IPv6 address goes in brackets:
    rsync reads `::1:/srv/` as a daemon address (`::`), and strips the brackets before it
    hands the host to its remote shell."""
    host = f"[{address}]" if ":" in address else address
    return f"{host}:{dest}/"


def bytes_sent(stats: str) -> int:
    """What `rsync --stats` says it sent."""
    match = re.search(r"Total bytes sent: ([\d,.]+)", stats)
    return int(re.sub(r"[,.]", "", match.group(1))) if match else 0


class Connection(Protocol):
    """One host's connection for one run, opened on first use and reused by every step."""

    def run(
        self, command: str, *, timeout: float | None = None, what: str = "", stdin: str | bytes | None = None
    ) -> Result:
        """Run a shell command (built by `console.fleet.remote`, every value quoted).

        `timeout` defaults to the inventory's `timeouts.command`; `what` names the command
        in a failure ("activate timed out after 30 s"); `stdin` is fed to the command
        (text as UTF-8), then closed (None: no input). A non-zero exit, a timeout or a
        refused host key raises `HostError`."""
        ...

    def stream(
        self,
        command: str,
        *,
        timeout: float | None = None,
        what: str = "",
        feed: Iterable[bytes] = (),
        on_line: Callable[[str], None] | None = None,
    ) -> Result:
        """Run a long command and talk to it while it runs: `feed` is sent to its stdin as
        it yields (from a thread of its own, so a feed may wait for other hosts; then end
        of file), and each line the command prints goes to `on_line` as it arrives.
        Otherwise as `run`: a non-zero exit, a timeout or a lost connection raises
        `HostError` (whose `exit_code` is None or -1 when the command's own status is unknown)."""
        ...

    def rsync(self, source: Path, dest: str, options: Sequence[str] = (), *, timeout: float | None = None) -> int:
        """Copy the contents of the local directory `source` into the directory `dest` on
        the host (`rsync -a` plus `options`) within `timeout` (default `timeouts.sync`);
        returns the bytes sent. A failure or a timeout raises `HostError`."""
        ...

    def close(self) -> None:
        """The run is done with this host: release what the connection holds. Called once
        at the end of every run, whatever happened."""
        ...


#: Makes the connection to one host; the pipeline calls it once per host per run.
Connect = Callable[[Inventory, Host], Connection]
