#!/usr/bin/env python3
"""http_backend.py - a tiny HTTP(S) backend on loopback for the outgoing
client's tests (tests/unit/test_httpc.c). Prints its port on stdout, then
serves HTTP/1.1 with keep-alive until killed:

  /ok       200 {"result":{}} echoing the request body's length
  /slow     sleeps ?ms= (default 2000) then 200
  /500      500 {"error":"boom"}
  /garbage  200 with a non-JSON body
  /big      200 with a body of ?n= bytes (default 1 MiB)
  /conns    200 with the number of TCP connections accepted so far

Usage: http_backend.py [--tls CERT KEY]"""
import http.server
import os
import socketserver
import ssl
import sys
import threading
import time
import urllib.parse

CONNS = 0
LOCK = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # the body's own segment must not wait for the headers' ACK (40 ms)

    def setup(self):
        global CONNS
        with LOCK:
            CONNS += 1
        super().setup()

    def log_message(self, *args):
        pass

    def answer(self, status, body):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        got = self.rfile.read(n)
        url = urllib.parse.urlparse(self.path)
        q = dict(urllib.parse.parse_qsl(url.query))
        if url.path == "/ok":
            self.answer(200, b'{"result":{"len":%d}}' % len(got))
        elif url.path == "/slow":
            time.sleep(int(q.get("ms", "2000")) / 1000)
            self.answer(200, b'{"result":{}}')
        elif url.path == "/500":
            self.answer(500, b'{"error":"boom"}')
        elif url.path == "/garbage":
            self.answer(200, b"<html>not json")
        elif url.path == "/big":
            self.answer(200, b"x" * int(q.get("n", str(1 << 20))))
        elif url.path == "/conns":
            self.answer(200, b"%d" % CONNS)
        else:
            self.answer(404, b"{}")


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a client that timed out or cancelled closes early: expected


def main():
    srv = Server(("127.0.0.1", 0), Handler)
    if len(sys.argv) == 4 and sys.argv[1] == "--tls":
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(sys.argv[2], sys.argv[3])
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    sys.stdout.write("%d\n" % srv.server_address[1])
    sys.stdout.flush()
    os.close(1)  # the test reads to EOF
    srv.serve_forever()


if __name__ == "__main__":
    main()
