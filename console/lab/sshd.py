"""The hosts' OpenSSH servers: one shared config, a start command per host, and waiting for them.

Root mode starts each sshd as `ip netns exec NS unshare --mount --uts sh -c SCRIPT`: the script
configures the host's network from an `ip -batch` on stdin, bind-mounts the host's lab directories
over /srv/www and the deploy user's home, sets the hostname and execs sshd. Without root, sshd runs
directly on 127.0.0.1 with the host's port. Either way sshd daemonizes and writes its pid file once
it listens, so waiting for a host is waiting for its pid file.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
from pathlib import Path

from console.core.errors import ConsoleError
from console.lab import layout, netns, procs, shaping
from console.lab.layout import HostSpec


def sshd_binary() -> str:
    path = shutil.which("sshd", path="/usr/sbin:/usr/bin:/sbin:/bin:/usr/local/sbin")
    if not path:
        raise ConsoleError("sshd is not installed: apt-get install openssh-server")
    return path


def config_text(lab_name: str, user: str, authorized_keys: Path) -> str:
    return f"""\
# sshd config of the deploy-console fleet lab {lab_name!r} (generated; per-host values come as -o options)
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
AuthenticationMethods publickey
PermitRootLogin {"prohibit-password" if user == "root" else "no"}
AllowUsers {user}
AuthorizedKeysFile {authorized_keys}
StrictModes no
MaxSessions 64
MaxStartups 256:30:1024
LoginGraceTime 30
LogLevel ERROR
UseDNS no
PrintMotd no
PrintLastLog no
X11Forwarding no
AllowAgentForwarding no
PermitUserEnvironment no
Compression no
Subsystem sftp internal-sftp
"""


def sshd_argv(config: Path, host: HostSpec) -> list[str]:
    listen = host.address if host.port == 22 else f"{host.address}:{host.port}"
    return [
        sshd_binary(),
        "-f",
        str(config),
        "-o",
        f"ListenAddress={listen}",
        "-o",
        f"HostKey={host.host_key}",
        "-o",
        f"PidFile={host.pid_file}",
        "-E",
        str(host.log_file),
    ]


def host_script(config: Path, host: HostSpec, rate: str | None, network: bool = True) -> str:
    """Root mode: what runs inside the host's fresh mount+UTS namespace before sshd.

    `network`: also configure the namespace's links from an `ip -batch` on stdin (first start only;
    the network namespace outlives a killed sshd).
    """
    steps = ["ip -batch -"] if network else []
    if network and rate:
        steps.append("tc qdisc replace dev eth0 " + " ".join(shaping.tbf_args(rate)))
    steps += [
        f"mount --bind {shlex.quote(str(host.www))} {layout.HOST_DEPLOY_PATH}",
        f"mount --bind {shlex.quote(str(host.home))} {layout.DEPLOY_HOME}",
        f"hostname {host.name}",
        "exec " + shlex.join(sshd_argv(config, host)),
    ]
    return " && ".join(steps)


def namespace_prefix(host: HostSpec) -> list[str]:
    """Root mode: the command prefix that enters a new mount+UTS namespace inside the host's netns."""
    return ["ip", "netns", "exec", host.netns, "unshare", "--mount", "--uts", "--propagation", "private"]


def start(
    config: Path,
    hosts: list[HostSpec],
    all_hosts: list[HostSpec],
    netns_mode: bool,
    rate: str | None = None,
    network: bool = True,
    timeout: float = 20.0,
) -> None:
    """Start every host's sshd in parallel and wait until all of them listen."""
    for h in hosts:
        h.pid_file.unlink(missing_ok=True)
    started: list[tuple[HostSpec, subprocess.Popen[str]]] = []
    for h in hosts:
        if netns_mode:
            argv = [*namespace_prefix(h), "sh", "-c", host_script(config, h, rate, network)]
            stdin = netns.host_batch(h, all_hosts) if network else None
        else:
            argv, stdin = sshd_argv(config, h), None
        p = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        if stdin and p.stdin:
            p.stdin.write(stdin)
            p.stdin.close()
        started.append((h, p))
    failed = []
    for h, p in started:
        err = p.stderr.read() if p.stderr else ""
        if p.stderr:
            p.stderr.close()
        if p.wait() != 0:
            failed.append(f"{h.name}: {procs.last_line(err)}")
    if failed:
        raise ConsoleError(f"sshd did not start on {len(failed)} host(s): {failed[0]}")
    wait_listening(hosts, timeout)


def wait_listening(hosts: list[HostSpec], timeout: float = 20.0) -> None:
    """Poll the pid files (sshd writes its pid file after it binds its listener)."""
    pending = list(hosts)
    deadline = time.monotonic() + timeout
    while pending:
        pending = [h for h in pending if procs.read_pid(h.pid_file) is None]
        if not pending:
            return
        if time.monotonic() > deadline:
            h = pending[0]
            log = ""
            try:
                log = procs.last_line(h.log_file.read_text())
            except OSError:
                pass
            raise ConsoleError(f"{len(pending)} host(s) did not listen within {timeout:g} s, e.g. {h.name}: {log}")
        time.sleep(0.01)


def listener_pid(host: HostSpec) -> int | None:
    """The host's sshd listener, if it runs."""
    pid = procs.read_pid(host.pid_file)
    return pid if pid is not None and procs.is_alive(pid) else None


def reload(host: HostSpec, timeout: float = 10.0) -> None:
    """SIGHUP the listener: sshd re-execs itself, re-reading its config and host key; wait until it listens again."""
    pid = listener_pid(host)
    if pid is None:
        return
    host.pid_file.unlink(missing_ok=True)
    os.kill(pid, 1)
    wait_listening([host], timeout)
