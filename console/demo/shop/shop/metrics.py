"""Counters and a latency histogram, written out in the Prometheus text exposition format.

Requests to /health and /metrics are not counted: they are the fleet's own checks, not shoppers.
The counters belong to one worker process and start from zero when a reload starts a new one;
Prometheus' rate() treats that as a counter reset.
"""

import threading
import time

#: Upper bounds (seconds) of the latency histogram buckets.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

COUNTERS = {
    "shop_requests_total": "Requests served to shoppers (pages, assets, checkouts).",
    "shop_checkouts_total": "Checkouts taken.",
    "shop_checkout_failures_total": "Checkouts that failed with a server error.",
    "shop_errors_total": "Requests answered with a 5xx status.",
}


class Metrics:
    def __init__(self, revision):
        self.revision = revision
        self.started = time.time()
        self.lock = threading.Lock()
        self.counters = dict.fromkeys(COUNTERS, 0)
        self.buckets = [0] * len(BUCKETS)
        self.latency_sum = 0.0
        self.latency_count = 0

    def incr(self, name):
        with self.lock:
            self.counters[name] += 1

    def observe(self, seconds):
        with self.lock:
            self.latency_sum += seconds
            self.latency_count += 1
            for i, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    self.buckets[i] += 1

    def render(self):
        with self.lock:
            counters = dict(self.counters)
            buckets = list(self.buckets)
            total, count = self.latency_sum, self.latency_count
        lines = []
        for name, help_text in COUNTERS.items():
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} counter", f"{name} {counters[name]}"]
        name = "shop_request_duration_seconds"
        lines += [f"# HELP {name} Time to answer a shopper's request.", f"# TYPE {name} histogram"]
        for bound, n in zip(BUCKETS, buckets):
            lines.append(f'{name}_bucket{{le="{bound}"}} {n}')
        lines += [f'{name}_bucket{{le="+Inf"}} {count}', f"{name}_sum {total:.6f}", f"{name}_count {count}"]
        lines += [
            "# HELP shop_info The release this worker serves.",
            "# TYPE shop_info gauge",
            f'shop_info{{revision="{self.revision}"}} 1',
            "# HELP shop_worker_start_time_seconds When this worker started, in Unix time.",
            "# TYPE shop_worker_start_time_seconds gauge",
            f"shop_worker_start_time_seconds {self.started:.3f}",
        ]
        return "\n".join(lines) + "\n"
