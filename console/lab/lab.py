"""`Lab`: a fleet of real OpenSSH hosts to deploy to, keyed by name (the invoke tasks are a thin layer over it)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from console.core.errors import ConsoleError
from console.lab import faults, inventory, keys, layout, netns, procs, shaping, sshd, users
from console.lab import state as labstate
from console.lab.layout import HostSpec
from console.lab.state import LabState


@dataclass(frozen=True)
class HostStatus:
    """One host as `status` sees it."""

    name: str
    address: str
    port: int
    deploy_path: str
    alive: bool
    """Its sshd listener runs (a cut host is still alive)."""
    cut: bool = False
    filled: bool = False
    slow: str | None = None
    """The rate set by `slow`, if any."""
    rekeyed: bool = False

    @property
    def condition(self) -> str:
        """One word or a few for a table: up, dead, cut, filled, slow 1mbit, rekeyed."""
        parts = [] if self.alive else ["dead"]
        parts += [w for w, on in (("cut", self.cut), ("filled", self.filled), ("rekeyed", self.rekeyed)) if on]
        if self.slow:
            parts.append(f"slow {self.slow}")
        return ", ".join(parts) or "up"


class Lab:
    """A lab of `hosts` sshd hosts named web001.., with its state in /tmp/deploy-console-labs/<name>/.

    As root, each host has its own network, mount and UTS namespace on a bridge in the lab's own
    /20 of 198.18.0.0/15; without root, each host is an sshd on its own port of 127.0.0.1.
    Every method works from the state on disk, so any process can act on a lab made by another.
    """

    def __init__(self, name: str = "lab") -> None:
        self.name = layout.check_name(name)

    def __repr__(self) -> str:
        return f"Lab({self.name!r})"

    # -- where things are -------------------------------------------------------------------
    @property
    def dir(self) -> Path:
        return layout.lab_dir(self.name)

    @property
    def key_path(self) -> Path:
        """The deploy user's private key (readable by whoever made the lab)."""
        return self.dir / "deploy_ed25519"

    @property
    def known_hosts_path(self) -> Path:
        return self.dir / "known_hosts"

    @property
    def inventory_path(self) -> Path | None:
        s = labstate.load(self.name)
        return Path(s.inventory) if s and s.inventory else None

    @property
    def user(self) -> str:
        return labstate.require(self.name).user

    def is_up(self) -> bool:
        return labstate.load(self.name) is not None

    def hosts(self) -> list[HostSpec]:
        return list(labstate.require(self.name).hosts)

    # -- life cycle -------------------------------------------------------------------------
    def up(
        self,
        hosts: int,
        rate: str | None = None,
        inventory_path: Path | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Path:
        """(Re)create the lab with `hosts` hosts; return the inventory path written.

        Leftovers of a lab with the same name (also from a crashed run) are cleaned first.
        `rate` (tc units, e.g. 10mbit) shapes every host's link and the deploy machine's link (see shaping).
        """
        netns_mode = os.geteuid() == 0
        if rate is not None:
            if not netns_mode:
                raise ConsoleError("--rate needs root: tc shapes links, and without root the lab runs on 127.0.0.1")
            shaping.parse_rate(rate)
        if not isinstance(hosts, int) or isinstance(hosts, bool):
            raise ConsoleError(f"--hosts must be a whole number (got {hosts!r})")
        path = Path(inventory_path) if inventory_path else Path.cwd() / "hosts" / f"{self.name}.yaml"
        self._teardown(labstate.load(self.name))
        with labstate.global_lock():
            slot = labstate.allocate_slot(self.name)
            planned = layout.plan_hosts(self.name, slot, hosts, netns_mode)
            self.dir.mkdir(mode=0o755)
            os.chmod(self.dir, 0o755)
            st = LabState(
                name=self.name,
                slot=slot,
                netns=netns_mode,
                uid=os.getuid(),
                user="",
                hosts=planned,
                rate=rate,
                inventory=str(path),
            )
            st.save()
        try:
            user = users.ensure_lab_user() if netns_mode else users.current()
            st.user = user.name
            st.save()
            self._write_files(st, user)
            if netns_mode:
                procs.run(["ip", "-batch", "-"], input=netns.up_batch(self.name, slot, planned, shaped=bool(rate)))
                if rate:
                    procs.run(["tc", "-batch", "-"], input=netns.shape_batch(slot, planned, rate))
            sshd.start(self.dir / "sshd_config", planned, planned, netns_mode, rate=rate)
            inventory.write(path, st, extra)
        except BaseException:
            self._teardown(st)
            raise
        return path

    def down(self) -> None:
        """Remove everything of the lab: processes, namespaces, links, qdiscs, mounts, files, its inventory."""
        st = labstate.load(self.name)
        if st is not None and st.uid != os.getuid() and os.geteuid() != 0:
            raise ConsoleError(f"lab {self.name!r} belongs to uid {st.uid}; take it down as that user or root")
        self._teardown(st)

    def status(self) -> list[HostStatus]:
        st = labstate.require(self.name)
        out = []
        for h in st.hosts:
            f = st.faults.get(h.name) or labstate.Faults()
            out.append(
                HostStatus(
                    h.name,
                    h.address,
                    h.port,
                    h.deploy_path,
                    sshd.listener_pid(h) is not None,
                    f.cut,
                    f.filled,
                    f.slow,
                    f.rekeyed,
                )
            )
        return out

    # -- faults -----------------------------------------------------------------------------
    def kill(self, host: str) -> None:
        """The host's sshd dies, with its sessions (as root: every process of the host)."""
        self._fault(host, faults.kill)

    def cut(self, host: str) -> None:
        """The host's link goes down: connections to it hang (they are not refused)."""
        self._fault(host, faults.cut)

    def fill(self, host: str) -> None:
        """The host's deploy path becomes a 4 MiB tmpfs, nearly full, holding a copy of what was there."""
        self._fault(host, faults.fill)

    def slow(self, host: str, rate: str) -> None:
        """Shape the host's link (both ways) to `rate` with tc tbf."""
        self._fault(host, lambda st, h: faults.slow(st, h, rate))

    def rekey(self, host: str) -> None:
        """Give the host a new host key (known_hosts keeps the old one, so clients must refuse it)."""
        self._fault(host, faults.rekey)

    def heal(self, host: str | None = None) -> None:
        """Undo every fault of `host` (or of all hosts) and restart its sshd if it is dead."""
        st = labstate.require(self.name)
        targets = st.hosts if host in (None, "all") else [st.host(host)]
        try:
            for h in targets:
                faults.heal(st, h)
        finally:
            st.save()

    def exec(
        self, host: str, argv: Sequence[str], *, input: str | None = None, check: bool = False, timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        """Run `argv` on the host, as root (or the lab's user without root), and return its result.

        As root it runs in the host's namespaces, so `/srv/www` is that host's deploy path.
        Without root it runs directly; use `HostStatus.deploy_path` for the host's deploy path.
        """
        st = labstate.require(self.name)
        h = st.host(host)
        argv = [str(a) for a in argv]
        if st.netns:
            pid = sshd.listener_pid(h)
            if pid is not None:
                full = ["nsenter", "-t", str(pid), "-m", "-u", "-n", "--", *argv]
            else:  # dead host: a fresh mount namespace with the same view
                script = (
                    f"mount --bind {h.www} {layout.HOST_DEPLOY_PATH} && mount --bind {h.home} "
                    f'{layout.DEPLOY_HOME} && hostname {h.name} && exec "$@"'
                )
                full = [*sshd.namespace_prefix(h), "sh", "-c", script, "sh", *argv]
        else:
            full = argv
        proc = subprocess.run(full, input=input, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise ConsoleError(
                f"{host}: {' '.join(argv[:3])} failed (exit {proc.returncode}): "
                f"{procs.last_line(proc.stderr or proc.stdout)}"
            )
        return proc

    # -- internals --------------------------------------------------------------------------
    def _fault(self, host: str, action) -> None:
        st = labstate.require(self.name)
        h = st.host(host)
        try:
            action(st, h)
        finally:
            st.save()

    def _write_files(self, st: LabState, user: users.DeployUser) -> None:
        d = st.dir
        uid, gid = user.uid, user.gid
        (d / "state").mkdir(exist_ok=True)
        (d / "hosts").mkdir(exist_ok=True)
        if st.netns:
            for p in ("/run/sshd", layout.HOST_DEPLOY_PATH):
                os.makedirs(p, mode=0o755, exist_ok=True)
        deploy = keys.new_keypair()
        keys.write_keypair(deploy, d / "deploy_ed25519", f"{user.name}@lab-{self.name}")
        (d / "authorized_keys").write_text(f"{deploy.public} {user.name}@lab-{self.name}\n")
        host_keys = {h.name: keys.new_keypair() for h in st.hosts}
        known = "".join(keys.known_hosts_entry(h.address, h.port, host_keys[h.name].public) + "\n" for h in st.hosts)
        (d / "known_hosts").write_text(known)
        (d / "sshd_config").write_text(sshd.config_text(self.name, user.name, d / "authorized_keys"))
        for h in st.hosts:
            h.path.mkdir(mode=0o755)
            keys.write_keypair(host_keys[h.name], h.host_key, f"root@{h.name}")
            h.www.mkdir(mode=0o755)
            os.chown(h.www, uid, gid)
            if st.netns:  # the deploy user's per-host home: its key and everyone's host keys, no rc files
                ssh_dir = h.home / ".ssh"
                h.home.mkdir(mode=0o755)
                ssh_dir.mkdir(mode=0o700)
                for owned in (h.home, ssh_dir):
                    os.chown(owned, uid, gid)
                keys.write_keypair(deploy, ssh_dir / "id_ed25519", f"{user.name}@{h.name}", uid, gid)
                (ssh_dir / "known_hosts").write_text(known)
                os.chown(ssh_dir / "known_hosts", uid, gid)

    def _teardown(self, st: LabState | None) -> None:
        """Remove whatever exists of this lab, from its state file if any and from names otherwise."""
        d = self.dir
        pids: set[int] = set()
        if os.geteuid() == 0:
            files = [netns.netns_file(n) for n in netns.lab_netns(self.name)]
            for found in procs.pids_in_netns(files).values():
                pids.update(found)
        pids.update(procs.pids_with_cmdline(f"{d}/sshd_config"))
        # Without root, what a deploy started in a host's deploy path and detached from its ssh
        # session (the demo shop's gunicorn) is no descendant of sshd; its command line names the path.
        pids.update(procs.pids_with_cmdline(f"{d}/hosts/"))
        if d.is_dir():
            for pid_file in d.glob("hosts/*/sshd.pid"):
                pid = procs.read_pid(pid_file)
                if pid and procs.is_alive(pid):
                    pids.update(procs.descendants(pid))
        left = procs.kill_and_wait(pids)
        if left:
            raise ConsoleError(f"lab {self.name!r}: {len(left)} process(es) survived SIGKILL (pid {left[0]})")
        if os.geteuid() == 0:
            netns.teardown(self.name)
            _unmount_under(d)
        if d.exists():
            _rmtree(d)
        if st is not None and st.inventory:
            inv = Path(st.inventory)
            try:
                if inv.read_text().startswith(inventory.HEADER):
                    inv.unlink()
            except OSError:
                pass


def _unmount_under(d: Path) -> None:
    prefix = str(d) + "/"
    try:
        with open("/proc/self/mountinfo") as f:
            points = [line.split()[4] for line in f]
    except OSError:
        return
    for p in sorted((p for p in points if p.startswith(prefix)), reverse=True):
        procs.run(["umount", "-l", p], check=False)


def _rmtree(d: Path) -> None:
    def onerror(func, path, _exc):
        # A fill without root leaves directories read-only: make the parent writable and retry.
        try:
            parent = os.path.dirname(path)
            os.chmod(parent, stat.S_IMODE(os.lstat(parent).st_mode) | 0o700)
            if os.path.isdir(path) and not os.path.islink(path):
                os.chmod(path, stat.S_IMODE(os.lstat(path).st_mode) | 0o700)
            func(path)
        except OSError:
            pass

    shutil.rmtree(d, onerror=onerror)
    if d.exists():
        raise ConsoleError(f"cannot remove {d}; remove it by hand")
