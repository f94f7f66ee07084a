"""Fault verbs for tests and demos, and `heal`, which undoes them.

| verb   | root mode (namespaces)                                   | without root (127.0.0.1)                         |
|--------|----------------------------------------------------------|--------------------------------------------------|
| kill   | SIGKILL every process in the host's netns (sshd, its     | SIGKILL the sshd listener and every process      |
|        | sessions, anything started there): the host is dead      | below it (its sessions)                          |
| cut    | the host's link goes down; packets are dropped silently  | SIGSTOP the listener and its sessions: TCP       |
|        | (permanent neighbour entries: no ARP failure), so        | connects still complete (the kernel accepts),    |
|        | connects and open connections hang                       | but nothing answers: ssh hangs at the banner     |
| fill   | the deploy path becomes a 4 MiB tmpfs holding a copy of  | the deploy path's directories become read-only:  |
|        | what was there, with 64 KiB free: writes fail ENOSPC     | writes fail with EACCES, not ENOSPC              |
| slow   | tc tbf on both directions of the host's link             | not possible (ConsoleError)                      |
| rekey  | a new host key; sshd reloads (SIGHUP); known_hosts kept, | same                                             |
|        | so clients see a changed host key                        |                                                  |
| heal   | link up, shaping back to the lab's --rate (or none),     | SIGCONT, directory modes restored, original key  |
|        | tmpfs copied back and unmounted, original host key,      | back, sshd restarted if dead                     |
|        | sshd restarted (new mount namespace) if dead             |                                                  |

A host killed while filled loses its tmpfs (the mount namespace dies with its last process):
`heal` then brings back the deploy path as it was before `fill`.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import stat

from console.core.errors import ConsoleError
from console.lab import keys, layout, netns, procs, shaping, sshd
from console.lab.layout import HostSpec
from console.lab.state import LabState

FILL_SIZE = "4m"
FILL_FREE = 64 * 1024
FILLER = ".lab-fill"


def _config(state: LabState):
    return state.dir / "sshd_config"


def _host_pids(state: LabState, host: HostSpec) -> list[int]:
    if state.netns:
        path = netns.netns_file(host.netns)
        return procs.pids_in_netns([path]).get(path, [])
    pid = sshd.listener_pid(host)
    return procs.descendants(pid) if pid else []


def kill(state: LabState, host: HostSpec) -> None:
    left = procs.kill_and_wait(_host_pids(state, host))
    if left:
        raise ConsoleError(f"{host.name}: {len(left)} process(es) survived SIGKILL (pid {left[0]})")


def cut(state: LabState, host: HostSpec) -> None:
    if state.netns:
        procs.run(["ip", "link", "set", host.link, "down"])
    else:
        procs.signal_all(_host_pids(state, host), signal.SIGSTOP)
    state.faults_of(host.name).cut = True


def _uncut(state: LabState, host: HostSpec) -> None:
    if state.netns:
        procs.run(["ip", "link", "set", host.link, "up"])
    else:
        procs.signal_all(_host_pids(state, host), signal.SIGCONT)
    state.faults_of(host.name).cut = False


def slow(state: LabState, host: HostSpec, rate: str) -> None:
    if not state.netns:
        raise ConsoleError("slow needs root: tc shapes links, and this lab runs on 127.0.0.1 without namespaces")
    args = shaping.tbf_args(rate)
    procs.run(["tc", "qdisc", "replace", "dev", host.link, *args])
    procs.run(["tc", "-n", host.netns, "qdisc", "replace", "dev", "eth0", *args])
    state.faults_of(host.name).slow = rate


def _unslow(state: LabState, host: HostSpec) -> None:
    if state.rate:
        args = shaping.tbf_args(state.rate)
        procs.run(["tc", "qdisc", "replace", "dev", host.link, *args])
        procs.run(["tc", "-n", host.netns, "qdisc", "replace", "dev", "eth0", *args])
    else:
        procs.run(["tc", "qdisc", "del", "dev", host.link, "root"], check=False)
        procs.run(["tc", "-n", host.netns, "qdisc", "del", "dev", "eth0", "root"], check=False)
    state.faults_of(host.name).slow = None


def _nsenter(pid: int, script: str) -> None:
    procs.run(["nsenter", "-t", str(pid), "-m", "--", "sh", "-c", script])


def fill(state: LabState, host: HostSpec) -> None:
    f = state.faults_of(host.name)
    if f.filled:
        return
    if state.netns:
        pid = sshd.listener_pid(host)
        if pid is None:
            raise ConsoleError(f"{host.name} is dead (killed); heal it before filling it")
        mnt = host.path / "fill"
        mnt.mkdir(exist_ok=True)
        st = os.stat(host.www)
        m, www = shlex.quote(str(mnt)), layout.HOST_DEPLOY_PATH
        _nsenter(
            pid,
            f"""set -e
mount -t tmpfs -o size={FILL_SIZE},mode=0755,uid={st.st_uid},gid={st.st_gid} lab-fill {m}
if ! cp -a {www}/. {m}/ 2>/dev/null; then umount {m}; echo "its deploy path holds more than {FILL_SIZE}iB, too much to fill" >&2; exit 3; fi
free=$(( $(stat -f -c '%a*%S' {m}) - {FILL_FREE} ))
if [ "$free" -gt 0 ]; then fallocate -l "$free" {m}/{FILLER}; fi
mount --move {m} {www}""",
        )
    else:
        modes = {}
        for root, dirs, _files in os.walk(host.www):
            for d in [root] + [os.path.join(root, x) for x in dirs]:
                st = os.lstat(d)
                if stat.S_ISDIR(st.st_mode) and d not in modes:
                    modes[d] = stat.S_IMODE(st.st_mode)
        for d, mode in modes.items():
            os.chmod(d, mode & ~0o222)
        f.modes = modes
    f.filled = True


def _unfill(state: LabState, host: HostSpec) -> None:
    f = state.faults_of(host.name)
    if state.netns:
        pid = sshd.listener_pid(host)
        if pid is not None:  # else the mount namespace, and its tmpfs, died with the host
            www, dst = layout.HOST_DEPLOY_PATH, shlex.quote(str(host.www))
            _nsenter(
                pid,
                f"""set -e
if mountpoint -q {www} && [ "$(stat -f -c %T {www})" = tmpfs ]; then
  rsync -a --delete --exclude=/{FILLER} {www}/ {dst}/
  umount -l {www}
fi""",
            )
    else:
        for d, mode in sorted(f.modes.items(), reverse=True):
            try:
                os.chmod(d, mode)
            except OSError:
                pass
        f.modes = {}
    f.filled = False


def rekey(state: LabState, host: HostSpec) -> None:
    """Give the host a new host key (the lab's known_hosts keeps the old one)."""
    orig = host.host_key.with_name(host.host_key.name + ".orig")
    if not orig.exists():
        shutil.copy2(host.host_key, orig)
        shutil.copy2(host.host_key.with_suffix(".pub"), orig.with_name(orig.name + ".pub"))
    keys.write_keypair(keys.new_keypair(), host.host_key, f"rekeyed@{host.name}")
    sshd.reload(host)
    state.faults_of(host.name).rekeyed = True


def _unrekey(state: LabState, host: HostSpec) -> None:
    orig = host.host_key.with_name(host.host_key.name + ".orig")
    if orig.exists():
        os.replace(orig, host.host_key)
        os.replace(orig.with_name(orig.name + ".pub"), host.host_key.with_suffix(".pub"))
        sshd.reload(host)
    state.faults_of(host.name).rekeyed = False


def heal(state: LabState, host: HostSpec) -> None:
    """Undo every fault of the host and make sure its sshd runs."""
    f = state.faults_of(host.name)
    if f.cut:
        _uncut(state, host)
    if f.slow:
        _unslow(state, host)
    if f.filled:
        _unfill(state, host)
    if f.rekeyed:
        _unrekey(state, host)
    if sshd.listener_pid(host) is None:
        sshd.start(_config(state), [host], state.hosts, state.netns, network=False)
    state.faults.pop(host.name, None)
