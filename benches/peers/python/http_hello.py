"""The gevent peer of benches/http.rs (bench `http/hello`): gevent's pywsgi
server answering every request with `Hello, World!`, HTTP/1.1 keep-alive,
in one process on one hub.

    python http_hello.py [--duration SECONDS]

It listens on 127.0.0.1 on a free port and prints that port on its first
line of output; it stops by itself after the duration (60 s by default), or
earlier when the bench ends it. Access logging is off: a log line per
request would measure the logger.

Each connection gets TCP_NODELAY, as the other servers of the bench set
it (Go's net/http by default): pywsgi sends a reply's head and its body in
two writes, and with Nagle's algorithm on, the second waits for the
client's delayed acknowledgement of the first, about 40 ms per request,
which would measure that stall instead of gevent.
"""

import argparse
import socket
import sys

import gevent
from gevent.pywsgi import WSGIServer

BODY = b"Hello, World!"
HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))]


def hello(environ, start_response):
    start_response("200 OK", HEADERS)
    return [BODY]


class NoDelayServer(WSGIServer):
    def handle(self, sock, address):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().handle(sock, address)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60.0)
    args = parser.parse_args()
    server = NoDelayServer(("127.0.0.1", 0), hello, log=None)
    server.start()
    print(server.server_port, flush=True)
    gevent.sleep(args.duration)
    server.stop(timeout=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
