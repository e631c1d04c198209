"""The echo server of gevent and eventlet for `benches/net.rs`.

    python echo_server.py --lib gevent|eventlet [--max-seconds N]

Listens on two ports of 127.0.0.1 that the kernel picks, prints them on one
line of stdout (`PERSISTENT ONESHOT`), and serves, a greenlet per
connection, each with TCP_NODELAY as the bench's client sets it:

* on PERSISTENT it echoes every 64-byte request until the client closes
  (`net/echo_1conn`, `net/echo_64conn`);
* on ONESHOT it echoes one request and closes first (`net/connect_accept`).

gevent serves with `gevent.server.StreamServer`, eventlet with
`eventlet.serve`: each library's own server, as an application would use it.
`cargo xtask bench` starts it pinned to the bench client's CPU and names it
to the bench in `GREEN_BENCH_EXTERNAL_ECHO` (the module doc of
`benches/net.rs`). It stops by itself when its parent process is gone or
after `--max-seconds`, so a killed bench run leaves no server behind.
"""

import argparse
import os
import socket
import sys
import time
import warnings

# Size of a request and of its reply (benches/support/echo_client.rs).
MSG = 64


def serve_connection(sock, oneshot):
    """Echoes MSG-byte requests on `sock` until the client closes (or once,
    when `oneshot`), then closes it."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = bytearray(MSG)
    view = memoryview(buf)
    try:
        while True:
            got = 0
            while got < MSG:
                n = sock.recv_into(view[got:])
                if n == 0:
                    return
                got += n
            sock.sendall(view)
            if oneshot:
                return
    except ConnectionError:
        # The client went away mid-request: the bench reports its own side.
        return
    finally:
        sock.close()


def run_gevent(ready, watchdog):
    from gevent.server import StreamServer

    servers = [
        StreamServer(("127.0.0.1", 0), lambda sock, _addr: serve_connection(sock, False)),
        StreamServer(("127.0.0.1", 0), lambda sock, _addr: serve_connection(sock, True)),
    ]
    for server in servers:
        server.start()
    ready([server.server_port for server in servers])
    watchdog(__import__("gevent").sleep)


def run_eventlet(ready, watchdog):
    with warnings.catch_warnings():
        # 0.41 warns on import that it is in maintenance mode.
        warnings.simplefilter("ignore")
        import eventlet

    listeners = [eventlet.listen(("127.0.0.1", 0)) for _ in range(2)]
    eventlet.spawn(eventlet.serve, listeners[0], lambda sock, _addr: serve_connection(sock, False))
    eventlet.spawn(eventlet.serve, listeners[1], lambda sock, _addr: serve_connection(sock, True))
    ready([listener.getsockname()[1] for listener in listeners])
    watchdog(eventlet.sleep)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lib", choices=["gevent", "eventlet"], required=True)
    parser.add_argument(
        "--max-seconds", type=float, default=3600.0, help="stop after this long whatever happens"
    )
    args = parser.parse_args()
    parent = os.getppid()
    deadline = time.monotonic() + args.max_seconds

    def ready(ports):
        print(" ".join(str(p) for p in ports), flush=True)

    def watchdog(sleep):
        # Wakes once a second: a negligible share of the loop's work.
        while os.getppid() == parent and time.monotonic() < deadline:
            sleep(1.0)
        sys.stdout.flush()
        os._exit(0)

    {"gevent": run_gevent, "eventlet": run_eventlet}[args.lib](ready, watchdog)


if __name__ == "__main__":
    main()
