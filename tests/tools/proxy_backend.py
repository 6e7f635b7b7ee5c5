#!/usr/bin/env python3
"""proxy_backend.py - a scripted application backend on loopback for the
proxy hooks' integration tests (tests/integration/test_backend_*.py). Run as a
process it prints its port on stdout, then serves HTTP/1.1 with keep-alive
(one thread per connection) until killed. Every POST to a path answers with
that path's script, and is logged:

  POST /_script   {"PATH": SPEC or [SPEC, ...], ...}: set the answers (a list:
                  one per request, the last one repeats)
  POST /_reset    forget the scripts and the log
  GET  /_log      [{"path", "headers", "body"}, ...] every hook request so far

SPEC: {"json": ANSWER} (200 with that JSON), {"status": N, "body": "text"},
{"garbage": true} (200, not JSON), {"close": true} (close the socket without
answering), plus "delay_ms": N before answering. A path without a script
answers 404.

In a test: `with ProxyBackend() as be: be.script(connect={...}); be.url("/connect")`
(the process dies with the test: PR_SET_PDEATHSIG)."""
import ctypes
import http.server
import json
import os
import signal
import socketserver
import subprocess
import sys
import threading
import time
import urllib.request

LOCK = threading.Lock()
SCRIPTS = {}
LOG = []


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, body, ctype="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/_log":
            with LOCK:
                body = json.dumps(LOG).encode()
            self.answer(200, body)
        else:
            self.answer(404, b"{}")

    def next_spec(self, path):
        with LOCK:
            s = SCRIPTS.get(path)
            if isinstance(s, list):
                return s.pop(0) if len(s) > 1 else (s[0] if s else None)
            return s

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        got = self.rfile.read(n)
        path = self.path
        if path == "/_script":
            with LOCK:
                SCRIPTS.update(json.loads(got))
            self.answer(200, b"{}")
            return
        if path == "/_reset":
            with LOCK:
                SCRIPTS.clear()
                LOG.clear()
            self.answer(200, b"{}")
            return
        try:
            body = json.loads(got)
        except ValueError:
            body = got.decode("utf-8", "replace")
        with LOCK:
            LOG.append({"path": path, "headers": dict(self.headers.items()), "body": body})
        spec = self.next_spec(path)
        if spec is None:
            self.answer(404, b'{"error":"no script"}')
            return
        if spec.get("delay_ms"):
            time.sleep(spec["delay_ms"] / 1000)
        if spec.get("close"):
            self.close_connection = True
            self.connection.shutdown(2)
            return
        if spec.get("garbage"):
            self.answer(200, b"<html>this is not JSON", "text/html")
        elif "json" in spec:
            self.answer(spec.get("status", 200), json.dumps(spec["json"]).encode())
        else:
            self.answer(spec.get("status", 200), spec.get("body", "").encode())

    def handle_error(self, request, client_address):
        pass


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def handle_error(self, request, client_address):
        pass


def main():
    srv = Server(("127.0.0.1", 0), Handler)
    sys.stdout.write(f"{srv.server_address[1]}\n")
    sys.stdout.flush()
    os.close(1)
    signal.signal(signal.SIGTERM, lambda *a: os._exit(0))
    srv.serve_forever()


def _die_with_parent():
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class ProxyBackend:
    """The backend process, for a test (context manager)."""

    def __init__(self):
        self.proc = None
        self.port = None

    def start(self):
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__)], stdout=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        self.port = int(self.proc.stdout.readline().decode().strip())
        self.proc.stdout.close()
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def __enter__(self):
        return self.start()

    def __exit__(self, *a):
        self.stop()

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def _post(self, path, obj):
        req = urllib.request.Request(self.url(path), data=json.dumps(obj).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.read()

    def script(self, **paths):
        """script(connect={"json": {...}}, rpc=[...]): path "/NAME" for each NAME."""
        self._post("/_script", {"/" + k: v for k, v in paths.items()})

    def reset(self):
        self._post("/_reset", {})

    def log(self, path=None):
        with urllib.request.urlopen(self.url("/_log"), timeout=10) as r:
            entries = json.loads(r.read())
        return [e for e in entries if path is None or e["path"] == path]


if __name__ == "__main__":
    main()
