"""Chunked fanout: run one step on many hosts, `chunk_size` at a time.

Hosts are split into chunks; a chunk's hosts run in parallel, chunks run one after
another (Deployinator's "rsync in chunks of 10 hosts at a time"), which bounds the
parallelism over SSH. A phase whose commands move no bytes (or a few KiB) may run `WIDE`
hosts at once. Each host's step runs under a time limit; a host whose step raises, times
out or hangs is a failure with a reason, never a crash or a hung deploy. A step may also
put a host off (`Later`): it is neither ok nor failed, and the fanout comes back to it
after the other hosts, a chunk at a time (`Fanout.chunks`). Between chunks is a safe
point: a stop request (Ctrl-C) takes effect there.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from console.config.inventory import Host
from console.core.events import HostDone, HostFailed, HostProgress, Subscriber
from console.fleet.connection import HostError


class Stopped(Exception):
    """A stop was requested and the fanout reached a safe point."""


class Later(Exception):
    """A step cannot do this host in this pass (a wide pass that found the host needs a
    transfer, which runs a chunk at a time): the host is recorded in `Outcome.later`,
    with no event, none of its later steps run, and the fanout comes back to it. A step
    puts a host off once at most."""


@dataclass
class Outcome:
    """Which hosts a phase left ok and which failed (host name -> HostFailed)."""

    ok: list[Host] = field(default_factory=list)
    failed: dict[str, HostFailed] = field(default_factory=dict)
    later: list[Host] = field(default_factory=list)  # put off by its step (`Later`)


def chunked(hosts: Sequence[Host], size: int) -> list[list[Host]]:
    return [list(hosts[i : i + size]) for i in range(0, len(hosts), size)]


#: A step does one phase's work on one host and returns (bytes sent, message).
Step = Callable[[Host], "tuple[int, str] | None"]


#: One step of a host's work: the phase it reports under, the step, its time limit.
HostStep = tuple[str, Step, float]

#: How many hosts a phase whose commands move no bytes (console/pipeline/steps.py) runs at
#: once: each costs the deploy host one channel on an open connection, so the fanout's
#: threads, not the link, are the bound.
WIDE = 100


class Fanout:
    """Runs steps over hosts in chunks and reports every host's result as events."""

    def __init__(self, deploy_id: str, emit: Subscriber, chunk_size: int, stop: threading.Event) -> None:
        self.deploy_id = deploy_id
        self.emit = emit
        self.chunk_size = chunk_size
        self.stop = stop
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=max(chunk_size, WIDE), thread_name_prefix="fanout")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def run(self, phase: str, hosts: Sequence[Host], step: Step, limit: float, *, width: int = 0) -> Outcome:
        """Run `step` on every host, `width` (default the chunk size) at a time; raises
        Stopped at a safe point."""
        outcome = Outcome()
        for chunk in self.chunks(phase, hosts, width, [outcome]):
            self.run_chunk(phase, chunk, step, limit, outcome)
        return outcome

    def chunks(
        self, phase: str, hosts: Sequence[Host], width: int, outcomes: Iterable[Outcome]
    ) -> Iterator[list[Host]]:
        """`hosts`, `width` (default the chunk size) at a time, then the hosts the steps put
        off meanwhile (`Later`, taken out of `outcomes`), a chunk at a time. Between two
        chunks, a stop request raises Stopped(phase)."""
        outcomes, pending, first = list(outcomes), list(hosts), True
        while pending:
            for chunk in chunked(pending, width or self.chunk_size):
                if not first and self.stop.is_set():
                    raise Stopped(phase)
                first = False
                yield chunk
            pending, width = [h for o in outcomes for h in o.later], self.chunk_size
            for outcome in outcomes:
                outcome.later = []

    def run_chunk(self, phase: str, chunk: Sequence[Host], step: Step, limit: float, outcome: Outcome) -> None:
        """Run `step` on the hosts of one chunk in parallel, each within `limit` seconds."""
        self.run_steps(chunk, [(phase, step, limit)], {phase: outcome})

    def run_steps(self, chunk: Sequence[Host], steps: Sequence[HostStep], outcomes: dict[str, Outcome]) -> None:
        """The hosts of one chunk in parallel, each running `steps` in order until its
        first failure (a host staged with one worker: its code does not wait for the
        other hosts' assets). Each step within its own limit; the events say when each
        step of each host starts and ends."""
        current: dict[str, int] = {}  # host -> the index of the step it is in
        futures: dict[Future, Host] = {}
        for host in chunk:
            current[host.name] = 0
            self.emit(HostProgress(self.deploy_id, phase=steps[0][0], host=host.name))
            futures[self._pool.submit(self._host, host, steps, outcomes, current)] = host
        deadline = time.monotonic() + sum(limit for _, _, limit in steps) + 2  # steps enforce their own limits
        _, pending = wait(futures, timeout=deadline - time.monotonic())
        for future in pending:  # the backstop: a step that ignored its limit fails its host
            host = futures[future]
            with self._lock:
                index = current.pop(host.name, None)
                if index is not None:
                    phase, _, limit = steps[index]
                    failure = HostError(f"{phase} did not finish within {limit:g} s")
                    self._record(phase, host, limit, failure, outcomes[phase])

    def _host(self, host: Host, steps: Sequence[HostStep], outcomes: dict[str, Outcome], current: dict[str, int]):
        for index, (phase, step, _) in enumerate(steps):
            if index:
                self.emit(HostProgress(self.deploy_id, phase=phase, host=host.name))
            elapsed, result = self._timed(step, host)
            with self._lock:
                if current.get(host.name) != index:
                    return  # the backstop failed this host meanwhile
                if result is None:
                    del current[host.name]
                    outcomes[phase].later.append(host)
                    return
                self._record(phase, host, elapsed, result, outcomes[phase])
                if isinstance(result, HostError) or index == len(steps) - 1:
                    del current[host.name]
                    return
                current[host.name] = index + 1

    @staticmethod
    def _timed(step: Step, host: Host) -> tuple[float, tuple[int, str] | HostError | None]:
        """How long the step took, and its result (None: `Later`)."""
        t0 = time.monotonic()
        try:
            result = step(host) or (0, "")
            return time.monotonic() - t0, result
        except Later:
            return time.monotonic() - t0, None
        except HostError as exc:
            return time.monotonic() - t0, exc
        except Exception as exc:  # noqa: BLE001 - a bug in a step must not take the fleet down with it
            return time.monotonic() - t0, HostError(f"{type(exc).__name__}: {exc}")

    def _record(
        self, phase: str, host: Host, elapsed: float, result: tuple[int, str] | HostError, outcome: Outcome
    ) -> None:
        event: HostDone | HostFailed
        if isinstance(result, HostError):
            event = HostFailed(
                self.deploy_id,
                phase=phase,
                host=host.name,
                reason=result.reason,
                seconds=round(elapsed, 3),
                exit_code=result.exit_code,
                output=result.output,
            )
            outcome.failed[host.name] = event
        else:
            sent, message = result
            event = HostDone(
                self.deploy_id, phase=phase, host=host.name, seconds=round(elapsed, 3), bytes=sent, message=message
            )
            outcome.ok.append(host)
        self.emit(event)
