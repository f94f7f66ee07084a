"""Reading YAML against tables of keys, with every mistake as one line.

A section of the inventory is a `Table` of `Key`s: each key's name, the check that reads
and validates its node, its default and a one-line doc. `Reader.table` walks one mapping
node with it: unknown, doubled and missing keys, then each key in table order (so a check
or a derived default may use the keys read before it), then the default of every key not
given. The reader works on PyYAML's node tree, so each error names the file and line:

    hosts/production.yaml:12: hosts[3].port: expected an integer from 1 to 65535, got 'ssh'
"""

from __future__ import annotations

import re
from collections import ChainMap
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from console.core.errors import ConsoleError
from console.core.text import is_printable, printable

#: Names of environments, users and hosts: letters, digits, '.', '_' or '-'.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")

#: What a check sees besides its node: the values already read, in its table and the enclosing ones.
Scope = ChainMap[str, Any]
Check = Callable[["Reader", yaml.Node, str, Scope], Any]


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


#: The default of a key that must be given.
REQUIRED: Any = _Required()


@dataclass(frozen=True)
class Derived:
    """A default computed from the keys read before it, e.g. a host's address is its name."""

    of: Callable[[Scope], Any]


@dataclass(frozen=True)
class Key:
    """One key: how its node is read, its value when absent, and what it means.

    `name` is as written in the file; `build.command` is the key `command` of a mapping
    `build` that holds nothing else. `field` is the dataclass field it fills when that is
    not its name; `table` the keys of the mapping it holds (or of each mapping in its list).
    """

    name: str
    check: Check
    default: Any
    doc: str
    field: str = ""
    table: Table | None = None

    @property
    def attr(self) -> str:
        return self.field or self.name.rpartition(".")[2]


@dataclass(frozen=True, eq=False)
class Table:
    """The keys of one section, in the order they are read."""

    keys: tuple[Key, ...]

    @property
    def allowed(self) -> set[str]:
        return {k.name.partition(".")[0] for k in self.keys}

    @property
    def required(self) -> list[str]:
        return [k.name for k in self.keys if k.default is REQUIRED]

    def key(self, attr: str) -> Key:
        """The key that fills dataclass field `attr`."""
        for key in self.keys:
            if key.attr == attr:
                return key
        raise KeyError(attr)

    def default(self, attr: str) -> Any:
        """The default of a key that has a fixed one (what the dataclass field defaults to)."""
        value = self.key(attr).default
        if value is REQUIRED or isinstance(value, Derived) or value is SECTION:
            raise ValueError(f"key {attr!r} has no fixed default")
        return value


class _Section:
    def __repr__(self) -> str:
        return "SECTION"


#: The default of a key whose table has defaults for all its keys: those defaults.
SECTION: Any = _Section()


class Reader:
    """Walks a YAML node tree and turns mistakes into one-line errors with a line number.

    `make` names the dataclass a table's values become (the table's values as a dict
    otherwise); `base` is the directory relative paths are relative to.
    """

    def __init__(self, path: Path, *, base: Path, make: Mapping[Table, Callable[..., Any]]) -> None:
        self.path = path
        self.base = base
        self.make = make

    def fail(self, node: yaml.Node | None, key: str, expected: str) -> ConsoleError:
        line = f":{node.start_mark.line + 1}" if node is not None else ""
        return ConsoleError(f"{self.path}{line}: {key}: {expected}")

    # -- tables ----------------------------------------------------------------------

    def table(
        self,
        node: yaml.Node | None,
        where: str,
        table: Table,
        scope: Scope | None = None,
        preset: Mapping[str, Any] | None = None,
    ) -> Any:
        """The values of `table` read from mapping `node` (None: nothing given, every default),
        with `preset` fields already set."""
        given = self.mapping(node, where, table.allowed, set(table.required)) if node is not None else {}
        values: dict[str, Any] = dict(preset or {})
        seen = scope.new_child(values) if scope is not None else ChainMap(values)
        inner: dict[str, dict[str, yaml.Node]] = {}
        for key in table.keys:
            if key.attr in values:
                continue
            head, dot, tail = key.name.partition(".")
            path = f"{where}.{key.name}" if where else key.name
            if dot and head in given and head not in inner:
                tails = {k.name.partition(".")[2] for k in table.keys if k.name.startswith(head + ".")}
                inner[head] = self.mapping(given[head], head if not where else f"{where}.{head}", tails)
            found = inner.get(head, {}).get(tail) if dot else given.get(head)
            if found is not None:
                values[key.attr] = key.check(self, found, path, seen)
            elif key.default is SECTION:
                assert key.table is not None, key.name
                values[key.attr] = self.table(None, path, key.table, seen)
            elif isinstance(key.default, Derived):
                values[key.attr] = key.default.of(seen)
            else:
                values[key.attr] = key.default
        make = self.make.get(table)
        return make(**values) if make else values

    def mapping(
        self, node: yaml.Node, key: str, allowed: set[str], required: set[str] | frozenset[str] = frozenset()
    ) -> dict[str, yaml.Node]:
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, key or "(top level)", f"expected a mapping, got {show(node)}")
        out: dict[str, yaml.Node] = {}
        for k, v in node.value:
            name = k.value if isinstance(k, yaml.ScalarNode) else None
            where = f"{key}.{name}" if key else str(name)
            if name not in allowed:
                raise self.fail(k, where, f"unknown key; expected one of: {', '.join(sorted(allowed))}")
            if name in out:
                raise self.fail(k, where, "key given twice")
            out[name] = v
        for name in sorted(required - out.keys()):
            raise self.fail(node, f"{key}.{name}" if key else name, "required key is missing")
        return out

    def items(self, node: yaml.Node, key: str, what: str) -> list[yaml.Node]:
        """The items of a list node."""
        if not isinstance(node, yaml.SequenceNode):
            raise self.fail(node, key, f"expected a list of {what}, got {show(node)}")
        return list(node.value)

    # -- values ----------------------------------------------------------------------

    def scalar(self, node: yaml.Node, key: str) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            raise self.fail(node, key, f"expected a single value, got {show(node)}")
        return yaml.safe_load(yaml.serialize(node)) if node.tag != "tag:yaml.org,2002:str" else node.value

    def string(self, node: yaml.Node, key: str, pattern: re.Pattern[str] | None = None) -> str:
        value = self.scalar(node, key)
        if not isinstance(value, str) or not value.strip():
            raise self.fail(node, key, f"expected a non-empty string, got {value!r}")
        if not is_printable(value):
            raise self.fail(node, key, f"expected text without control characters, got '{printable(value, 80)}'")
        if pattern and not pattern.match(value):
            raise self.fail(node, key, f"expected letters, digits, '.', '_' or '-', got {value!r}")
        return value

    def integer(self, node: yaml.Node, key: str, low: int, high: int | None = None) -> int:
        value = self.scalar(node, key)
        top = "" if high is None else f" to {high}"
        if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
            raise self.fail(node, key, f"expected an integer from {low}{top}, got {value!r}")
        return value

    def seconds(self, node: yaml.Node, key: str) -> float:
        value = self.scalar(node, key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise self.fail(node, key, f"expected a positive number of seconds, got {value!r}")
        return float(value)

    def boolean(self, node: yaml.Node, key: str) -> bool:
        value = self.scalar(node, key)
        if not isinstance(value, bool):
            raise self.fail(node, key, f"expected true or false, got {value!r}")
        return value

    def choice(self, node: yaml.Node, key: str, choices: tuple[str, ...]) -> str:
        value = self.scalar(node, key)
        if value not in choices:
            raise self.fail(node, key, f"expected one of {', '.join(choices)}, got {value!r}")
        return value

    def strings(self, node: yaml.Node, key: str) -> tuple[str, ...]:
        return tuple(self.string(item, f"{key}[{i}]") for i, item in enumerate(self.items(node, key, "strings")))

    def plain(self, node: yaml.Node, key: str) -> dict[str, Any]:
        """A free-form mapping of string keys (vars)."""
        self.mapping(node, key, allowed=_AnyKey())
        value = yaml.safe_load(yaml.serialize(node))
        return dict(value or {})

    def fraction(self, node: yaml.Node, key: str) -> float:
        value = self.scalar(node, key)
        text = str(value).strip()
        try:
            number = float(text[:-1]) / 100 if text.endswith("%") else float(text)
        except ValueError:
            number = -1
        if number < 0 or isinstance(value, bool):
            raise self.fail(node, key, f"expected a percent like 20% or a fraction like 0.2, got {value!r}")
        return number


class _AnyKey(set):
    """An allowed-keys set that allows every key (for free-form `vars`)."""

    def __contains__(self, item: object) -> bool:
        return isinstance(item, str)


def show(node: yaml.Node) -> str:
    """A node as an error message names what was found instead."""
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return repr(node.value)


# -- checks for table rows: each reads one node with a Reader method ------------------------


def text(pattern: re.Pattern[str] | None = None) -> Check:
    """A non-empty string (matching `pattern`)."""
    return lambda r, node, key, seen: r.string(node, key, pattern)


def integer(low: int, high: int | None = None) -> Check:
    return lambda r, node, key, seen: r.integer(node, key, low, high)


def seconds() -> Check:
    return lambda r, node, key, seen: r.seconds(node, key)


def boolean() -> Check:
    return lambda r, node, key, seen: r.boolean(node, key)


def choice(*choices: str) -> Check:
    return lambda r, node, key, seen: r.choice(node, key, choices)


def strings() -> Check:
    return lambda r, node, key, seen: r.strings(node, key)


def fraction() -> Check:
    return lambda r, node, key, seen: r.fraction(node, key)


def section(table: Table) -> Check:
    """A mapping read with `table`."""
    return lambda r, node, key, seen: r.table(node, key, table, seen)
