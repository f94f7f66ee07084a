"""Chunked fanout: run one step on many hosts, `chunk_size` at a time.

Hosts are split into chunks; a chunk's hosts run in parallel, chunks run one after
another (Deployinator's "rsync in chunks of 10 hosts at a time"), which bounds the
parallelism over SSH. Each host's step runs under a time limit; a host whose step
raises, times out or hangs is a failure with a reason, never a crash or a hung deploy.
Between chunks is a safe point: a stop request (Ctrl-C) takes effect there.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from console.config.inventory import Host
from console.core.events import HostDone, HostFailed, HostProgress, Subscriber
from console.fleet.connection import HostError


class Stopped(Exception):
    """A stop was requested and the fanout reached a safe point."""


@dataclass
class Outcome:
    """Which hosts a phase left ok and which failed (host name -> HostFailed)."""

    ok: list[Host] = field(default_factory=list)
    failed: dict[str, HostFailed] = field(default_factory=dict)


def chunked(hosts: Sequence[Host], size: int) -> list[list[Host]]:
    return [list(hosts[i : i + size]) for i in range(0, len(hosts), size)]


#: A step does one phase's work on one host and returns (bytes sent, message).
Step = Callable[[Host], "tuple[int, str] | None"]


class Fanout:
    """Runs steps over hosts in chunks and reports every host's result as events."""

    def __init__(self, deploy_id: str, emit: Subscriber, chunk_size: int, stop: threading.Event) -> None:
        self.deploy_id = deploy_id
        self.emit = emit
        self.chunk_size = chunk_size
        self.stop = stop
        self._pool = ThreadPoolExecutor(max_workers=chunk_size, thread_name_prefix="fanout")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def run(self, phase: str, hosts: Sequence[Host], step: Step, limit: float) -> Outcome:
        """Run `step` on every host, chunk by chunk; raises Stopped at a safe point."""
        outcome = Outcome()
        for index, chunk in enumerate(chunked(hosts, self.chunk_size)):
            if index and self.stop.is_set():
                raise Stopped(phase)
            self.run_chunk(phase, chunk, step, limit, outcome)
        return outcome

    def run_chunk(self, phase: str, chunk: Sequence[Host], step: Step, limit: float, outcome: Outcome) -> None:
        """Run `step` on the hosts of one chunk in parallel, each within `limit` seconds."""
        started = time.monotonic()
        futures: dict[Future, Host] = {}
        for host in chunk:
            self.emit(HostProgress(self.deploy_id, phase=phase, host=host.name))
            futures[self._pool.submit(self._timed, step, host)] = host
        pending = set(futures)
        deadline = started + limit + 2  # a step enforces its own limit; this is the backstop
        while pending:
            done, pending = wait(pending, timeout=max(0.0, deadline - time.monotonic()), return_when=FIRST_COMPLETED)
            for future in done:
                elapsed, result = future.result()
                self._record(phase, futures[future], elapsed, result, outcome)
            if not done:
                for future in pending:
                    host = futures[future]
                    self._record(phase, host, limit, HostError(f"{phase} did not finish within {limit:g} s"), outcome)
                break

    @staticmethod
    def _timed(step: Step, host: Host) -> tuple[float, tuple[int, str] | HostError]:
        t0 = time.monotonic()
        try:
            return time.monotonic() - t0, step(host) or (0, "")
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
