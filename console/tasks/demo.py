"""Demo tasks: `invoke demo.traffic` sends shoppers to the lab's demo shop."""

from __future__ import annotations

from invoke import Collection, task

from console.tasks.errors import clear_errors
from console.tasks.flags import number, whole_number


@task(
    help={
        "inventory": "inventory file (YAML) whose hosts run the demo shop",
        "rate": "shopper visits per second, across all hosts (default 5)",
        "duration": "seconds to shop for (default 60; Ctrl-C stops early)",
        "shoppers": "shopper threads (default 8)",
    }
)
@clear_errors
def traffic(c, inventory, rate=None, duration=None, shoppers=None):
    """Send shoppers to every host: a page from one host, its assets from others, a checkout.

    Prints what they saw: requests, asset 404s (a page's assets missing on another host),
    failed requests, and checkouts taken or failed. Hosts are http://{address}:{http_port}
    (host var http_port, default 8080); only loopback and 198.18.0.0/15 are contacted.
    """
    from console.config.inventory import load_inventory
    from console.demo.traffic import Traffic, host_urls

    per_second, seconds = number(rate, "--rate", default=5.0), number(duration, "--duration", default=60.0)
    threads = whole_number(shoppers, "--shoppers", default=8, high=1000)
    inv = load_inventory(inventory)
    shop = Traffic(host_urls(inv.hosts), rate=per_second, shoppers=threads)
    print(f"traffic: {len(shop.hosts)} hosts of {inv.environment}, {per_second:g} visits/s for {seconds:g} s")
    shop.start(seconds)
    try:
        summary = shop.wait()
    except KeyboardInterrupt:
        shop.stop()
        summary = shop.wait()
    for sample in summary.samples[:10]:
        print(f"  {sample}")
    print(f"traffic: {summary.line()}")


ns = Collection("demo")
ns.add_task(traffic)


@task(help={"hosts": "how many lab hosts (default 20)", "no_traffic": "do not start the shoppers"})
@clear_errors
def up(c, hosts=None, no_traffic=False):
    """Bring up the demo: lab fleet, shop, trunk repo, first release, StatsD collector and shoppers."""
    from console.demo.fleet import start_demo

    start_demo(whole_number(hosts, "--hosts", default=20), traffic=not no_traffic)


@task()
@clear_errors
def down(c):
    """Take the demo down: shoppers, collector, lab hosts."""
    from console.demo.fleet import stop_demo

    stop_demo()


ns.add_task(up)
ns.add_task(down)
