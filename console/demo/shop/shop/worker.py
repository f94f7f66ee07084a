"""One worker: serves the shop of one release on the listening socket its master hands it.

Forked by the master, which then runs `{release}/shop/worker.py --fd N --ready-fd M ...`
in the child as a script would run (runpy).
It loads the release, writes "ready <revision>" on the ready pipe, then accepts
connections until SIGTERM: then it stops accepting, says "stopped accepting" on the pipe
(the socket stays open in the master and the next worker), finishes the requests it
has, and exits. It also stops if its master dies. An idle worker sleeps in select():
SIGTERM wakes it through a pipe, so it neither polls nor lags (a fleet of idle workers
costs no CPU, and a reload never waits for a poll interval).
"""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
if sys.path and os.path.realpath(sys.path[0]) == os.path.join(ROOT, "shop"):
    sys.path.pop(0)  # never import the shop's modules as top-level names
sys.path.insert(0, ROOT)

import argparse  # noqa: E402
import selectors  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import threading  # noqa: E402
from socketserver import ThreadingMixIn  # noqa: E402
from http.server import HTTPServer  # noqa: E402

from shop.app import Shop, make_handler  # noqa: E402
from shop.statsd import StatsD  # noqa: E402


class InheritedServer(ThreadingMixIn, HTTPServer):
    """A threading HTTP server on a socket that is already bound and listening."""

    daemon_threads = False  # server_close() waits for every request in flight
    block_on_close = True

    def __init__(self, sock, handler):
        HTTPServer.__init__(self, sock.getsockname()[:2], handler, bind_and_activate=False)
        self.socket.close()
        self.socket = sock
        host, port = sock.getsockname()[:2]
        self.server_name, self.server_port = host, port

    def get_request(self):
        # The listening socket is non-blocking (it is shared: another worker may take the
        # connection first, and then accept must not hang); the connection itself blocks.
        conn, addr = self.socket.accept()
        conn.setblocking(True)
        return conn, addr

    def serve_until(self, wake):
        """Accept and serve connections until the pipe `wake` becomes readable."""
        with selectors.DefaultSelector() as selector:
            selector.register(self.socket, selectors.EVENT_READ)
            selector.register(wake, selectors.EVENT_READ)
            while wake not in {key.fileobj for key, _ in selector.select()}:
                self._handle_request_noblock()  # what serve_forever does per connection


def main(argv=None):
    p = argparse.ArgumentParser(prog="shop-worker")
    p.add_argument("--fd", type=int, required=True)
    p.add_argument("--ready-fd", type=int, required=True)
    p.add_argument("--deploy-path", required=True)
    p.add_argument("--statsd", default="")
    p.add_argument("--master-pid", type=int, default=0)
    args = p.parse_args(argv)

    stop = threading.Event()
    wake, woken = os.pipe()

    def on_term(*_):
        stop.set()
        os.write(woken, b"x")

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)

    shop = Shop(ROOT, args.deploy_path, StatsD(args.statsd))
    sock = socket.socket(fileno=args.fd)
    sock.setblocking(False)
    server = InheritedServer(sock, make_handler(shop))
    serving = threading.Thread(target=server.serve_until, args=(wake,), daemon=True)
    serving.start()
    os.write(args.ready_fd, f"ready {shop.revision}\n".encode())
    print(f"worker {os.getpid()}: serving {shop.revision} from {ROOT}", file=sys.stderr, flush=True)

    while not stop.wait(1.0):
        if args.master_pid and os.getppid() != args.master_pid:
            print(f"worker {os.getpid()}: master {args.master_pid} is gone, stopping", file=sys.stderr, flush=True)
            os.write(woken, b"x")
            break
    serving.join()  # the accept loop has ended: this worker takes no new connection
    try:
        os.write(args.ready_fd, b"stopped accepting\n")
        os.close(args.ready_fd)
    except OSError:
        pass
    server.server_close()  # wait for the requests in flight
    print(f"worker {os.getpid()}: stopped", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
