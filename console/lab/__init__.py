"""The fleet lab: real OpenSSH hosts to deploy to, for tests and demos.

    from console.lab import Lab
    lab = Lab("demo")
    inventory = lab.up(hosts=10, rate="100mbit")   # writes the inventory, returns its path
    lab.cut("web003"); lab.heal("web003")
    lab.down()

Modules: `layout` (names, addresses, ports, paths per lab), `state` (the lab's record on disk),
`netns` (bridge, veths, namespaces), `sshd` (config and start), `keys`, `users` (the deploy user),
`shaping` (tc tbf), `faults` (kill, cut, fill, slow, rekey, heal), `inventory` (the YAML written).
"""

from console.lab.lab import HostStatus, Lab
from console.lab.layout import LAB_ROOT

__all__ = ["LAB_ROOT", "HostStatus", "Lab"]
