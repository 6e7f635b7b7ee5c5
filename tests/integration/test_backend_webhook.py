"""Webhooks (issue 14 item 2, docs/backend.md "Webhooks"): a real herald
POSTing to a real HTTP receiver on loopback, which records every batch and
checks its X-Herald-Signature with the secret.

- every event type arrives with its members: client_connected /
  client_disconnected (native WebSocket, /sse, /ws/raw; reason and close
  code), member_added / member_removed once per user across two workers,
  channel_occupied / channel_vacated, publication (offset, epoch, data);
- the signature verifies, a tampered body does not, and the documented
  Python and Node snippets say the same;
- batching: many events, few POSTs, none waiting much past batch_max_delay;
- a receiver stopped and started again: nothing lost, nothing reordered per
  channel (the batch is retried head-of-line);
- a 4xx answer drops the batch (counted as rejected, not retried);
- a full queue drops the oldest events and counts them in /api/info;
- a namespace's webhook_url / webhook_events send its events elsewhere.
"""
import asyncio
import hashlib
import hmac
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from herald_testlib import SLOW, Herald, HeraldTestCase, HttpConn, main  # noqa: E402
from herald_native import API_KEY, Api, Native, run  # noqa: E402
from test_auth import AUD, SECRET, conn_token  # noqa: E402
from emu_client import Poller  # noqa: E402

WH_SECRET = "whsec-test-0123456789"
ALL_EVENTS = ("channel_occupied,channel_vacated,member_added,member_removed,client_connected,"
              "client_disconnected,publication")


def verify(secret, header, body):
    """The receiver's check, written from the contract (not herald's code)."""
    parts = dict(p.split("=", 1) for p in header.split(","))
    mac = hmac.new(secret.encode(), parts["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(mac, parts["v1"])


class Receiver:
    """An HTTP server on loopback recording webhook batches. mode: "ok"
    (200), "500", "400" or "hang" (never answers in time). stop() and
    start() again keep the port."""

    def __init__(self, secret=WH_SECRET, port=0):
        self.secret = secret
        self.port = port
        self.mode = "ok"
        self.batches = []        # (time, events) of the batches answered 2xx
        self.attempts = 0        # every POST, whatever the answer
        self.bad_signatures = 0
        self.lock = threading.Lock()
        self.httpd = None

    def start(self):
        rec = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                sig = self.headers.get("X-Herald-Signature", "")
                with rec.lock:
                    rec.attempts += 1
                    mode = rec.mode
                    if not sig or not verify(rec.secret, sig, body):
                        rec.bad_signatures += 1
                if mode == "hang":
                    time.sleep(3)
                status = {"ok": 200, "500": 500, "400": 400, "hang": 200}[mode]
                if status == 200:
                    with rec.lock:
                        rec.batches.append((time.monotonic(), json.loads(body)["events"]))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        class Server(http.server.ThreadingHTTPServer):
            allow_reuse_address = True
            daemon_threads = True

        self.httpd = Server(("127.0.0.1", self.port), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self):
        if self.httpd:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/hook"

    def events(self, kind=None):
        with self.lock:
            evs = [e for _, b in self.batches for e in b]
        return [e for e in evs if kind is None or e["event"] == kind]

    def wait(self, pred, timeout=5.0):
        deadline = time.monotonic() + timeout * SLOW
        while time.monotonic() < deadline:
            if pred(self.events()):
                return self.events()
            time.sleep(0.02)
        return self.events()


def herald(rec, *extra, workers=2, events=ALL_EVENTS):
    return Herald("--api-key", API_KEY, "--webhook.url", rec.url, "--webhook.secret", WH_SECRET,
                  "--webhook.events", events, "--token-hmac-secret", SECRET, "--auth.audience", AUD,
                  "--channels.presence", "true", *extra, workers=workers)


def webhook_info(api):
    return api.call("info", {})["nodes"][0]["webhook"]


def wait_webhook_info(api, pred, timeout=5.0):
    """webhook_info once pred(info) holds, or the last one after timeout s (x SLOW)."""
    deadline = time.monotonic() + timeout * SLOW
    info = webhook_info(api)
    while not pred(info) and time.monotonic() < deadline:
        time.sleep(0.02)
        info = webhook_info(api)
    return info


class TestEvents(HeraldTestCase):
    """Every event, with two workers."""

    @classmethod
    def make_server(cls):
        cls.rec = Receiver().start()
        return herald(cls.rec, "--channels.publish", "subscribers")

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls.rec.stop()

    def test_client_member_channel_and_publication_events(self):
        api = Api(self.server)
        self.addCleanup(api.close)
        ch = "room:" + os.urandom(4).hex()

        async def go():
            # 3 connections of alice, 2 of bob, over both workers; all join ch
            users = ["alice", "alice", "alice", "bob", "bob"]
            cs = [await Native.open(self.server, token=conn_token(u)) for u in users]
            for c in cs:
                await c.result("subscribe", {"channel": ch})
            ids = [c.client_id for c in cs]
            evs = self.rec.wait(lambda e: len([x for x in e if x["event"] == "client_connected"
                                               and x["client"] in ids]) == 5)
            conn = [e for e in evs if e["event"] == "client_connected" and e["client"] in ids]
            self.assertEqual(sorted(e["client"] for e in conn), sorted(ids), "one client_connected per connection")
            for e in conn:
                self.assertEqual(e["transport"], "websocket")
                self.assertEqual(e["remote"], "127.0.0.1")
                self.assertIn(e["user"], ("alice", "bob"))
            added = [e for e in self.rec.wait(lambda e: len([x for x in e if x["event"] == "member_added"
                                                             and x.get("channel") == ch]) >= 2)
                     if e["event"] == "member_added" and e["channel"] == ch]
            self.assertEqual(sorted(e["user"] for e in added), ["alice", "bob"], "one member_added per user")
            occ = [e for e in self.rec.events("channel_occupied") if e["channel"] == ch]
            self.assertEqual(len(occ), 1)

            pub = api.publish(ch, {"text": "hi"})
            evs = self.rec.wait(lambda e: any(x["event"] == "publication" and x["channel"] == ch for x in e))
            p = [e for e in evs if e["event"] == "publication" and e["channel"] == ch]
            self.assertEqual(len(p), 1)
            self.assertEqual((p[0]["data"], p[0]["offset"], p[0]["epoch"]), ({"text": "hi"}, pub["offset"], pub["epoch"]))
            self.assertNotIn("user", p[0], "the server API is nobody")
            await cs[3].result("publish", {"channel": ch, "data": [1, 2]})
            evs = self.rec.wait(lambda e: len([x for x in e if x["event"] == "publication" and x["channel"] == ch]) == 2)
            p = [e for e in evs if e["event"] == "publication" and e["channel"] == ch]
            self.assertEqual((p[1]["data"], p[1]["offset"], p[1]["user"], p[1]["client"]),
                             ([1, 2], pub["offset"] + 1, "bob", ids[3]))

            # two of alice's three go: no member_removed yet
            await cs[0].close()
            await cs[1].close()
            self.rec.wait(lambda e: len([x for x in e if x["event"] == "client_disconnected"
                                         and x["client"] in ids[:2]]) == 2)
            self.assertEqual([e for e in self.rec.events("member_removed") if e["channel"] == ch], [])
            # the server API ends bob's connections with its own code and reason
            api.call("disconnect", {"user": "bob", "code": 3333, "reason": "banned for spam"})
            await cs[2].close()
            evs = self.rec.wait(lambda e: any(x["event"] == "channel_vacated" and x["channel"] == ch for x in e))
            removed = [e for e in evs if e["event"] == "member_removed" and e["channel"] == ch]
            self.assertEqual(sorted(e["user"] for e in removed), ["alice", "bob"], "one member_removed per user")
            disc = {e["client"]: e for e in evs if e["event"] == "client_disconnected" and e["client"] in ids}
            self.assertEqual(set(disc), set(ids), "one client_disconnected per connection")
            for cid in ids[3:]:
                self.assertEqual((disc[cid]["code"], disc[cid]["reason"]), (3333, "banned for spam"))
            self.assertEqual((disc[ids[0]]["code"], disc[ids[0]]["reason"]), (1000, "normal closure"))
            self.assertGreaterEqual(disc[ids[0]]["duration_ms"], 0)
            self.assertEqual(len([e for e in evs if e["event"] == "channel_vacated" and e["channel"] == ch]), 1)
            # a channel's events reach the backend in the order they happened
            mine = [e["event"] for e in evs if e.get("channel") == ch]
            self.assertEqual(mine[0], "channel_occupied")
            self.assertEqual(mine[-1], "channel_vacated")
            self.assertEqual(len({e["id"] for e in evs}), len(evs), "ids are unique")
        run(go())
        self.assertEqual(self.rec.bad_signatures, 0)

    def test_sse_and_raw_clients(self):
        ch = "feed" + os.urandom(4).hex()
        sse = HttpConn(self.server.addr)
        sse.send(f"GET /sse?channel={ch} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n".encode())
        raw = self.server.ws(f"/ws/raw?channel={ch}")
        evs = self.rec.wait(lambda e: {x.get("transport") for x in e if x["event"] == "client_connected"}
                            >= {"sse", "websocket-raw"})
        got = {e["transport"] for e in evs if e["event"] == "client_connected"}
        self.assertTrue({"sse", "websocket-raw"} <= got, got)
        raw.close_socket()
        sse.close()
        evs = self.rec.wait(lambda e: {x.get("transport") for x in e if x["event"] == "client_disconnected"}
                            >= {"sse", "websocket-raw"})
        got = {e["transport"] for e in evs if e["event"] == "client_disconnected"}
        self.assertTrue({"sse", "websocket-raw"} <= got, got)

    def test_http_session_client(self):
        """A long-polling session is the connection: transport http."""
        api = Api(self.server)
        self.addCleanup(api.close)
        p = Poller(self.server)
        self.addCleanup(p.close)
        p.open()
        p.connect_subscribe("poll" + os.urandom(4).hex())
        cid = [m for m in p.lines.values() if m.get("id") == 1][0]["result"]["client"]
        evs = self.rec.wait(lambda e: any(x.get("client") == cid for x in e))
        conn = [e for e in evs if e["event"] == "client_connected" and e["client"] == cid]
        self.assertEqual(len(conn), 1)
        self.assertEqual(conn[0]["transport"], "http")
        api.call("disconnect", {"client": cid, "code": 3444, "reason": "bye"})
        evs = self.rec.wait(lambda e: any(x["event"] == "client_disconnected" and x["client"] == cid for x in e))
        disc = [e for e in evs if e["event"] == "client_disconnected" and e["client"] == cid]
        self.assertEqual([(e["code"], e["reason"], e["transport"]) for e in disc], [(3444, "bye", "http")])

    def test_no_connect_no_events(self):
        async def go():
            before = len(self.rec.events())
            c = await Native.open(self.server, connect=False)
            await c.close()
            time.sleep(0.4 * SLOW)
            late = [e for e in self.rec.events()[before:] if e["event"].startswith("client_")]
            self.assertEqual(late, [], "a connection that never connected emits nothing")
        run(go())


class TestSignature(unittest.TestCase):
    BODY = b'{"events":[{"event":"client_connected","id":"x-1","time_ms":1}]}'

    def header(self):
        t = str(int(time.time()))
        v1 = hmac.new(WH_SECRET.encode(), t.encode() + b"." + self.BODY, hashlib.sha256).hexdigest()
        return f"t={t},v1={v1}"

    def test_tampered_body_does_not_verify(self):
        h = self.header()
        self.assertTrue(verify(WH_SECRET, h, self.BODY))
        self.assertFalse(verify(WH_SECRET, h, self.BODY.replace(b"x-1", b"x-2")))
        self.assertFalse(verify("another-secret", h, self.BODY))

    def test_documented_snippets(self):
        """docs/backend.md's Python and Node lines, run as written there."""
        with open(os.path.join(os.path.dirname(__file__), "..", "..", "docs", "backend.md")) as f:
            doc = f.read()
        py = doc.split("```python\n# verify a webhook\n", 1)[1].split("```", 1)[0]
        js = doc.split("```js\n// verify a webhook\n", 1)[1].split("```", 1)[0]
        for body in (self.BODY, self.BODY + b" "):
            env = {"secret": WH_SECRET, "header": self.header(), "body": self.BODY}
            env["body"] = body
            exec(py, env)  # noqa: S102 - the documentation's own snippet
            self.assertEqual(env["ok"], body == self.BODY)
            if shutil.which("node"):
                prog = (f"const secret={json.dumps(WH_SECRET)}, header={json.dumps(self.header())}, "
                        f"body=Buffer.from({json.dumps(body.decode())});\n" + js + "\nprocess.stdout.write(String(ok));")
                out = subprocess.run(["node", "-e", prog], capture_output=True, text=True, timeout=20)
                self.assertEqual(out.stdout, "true" if body == self.BODY else "false", out.stderr)


class TestDelivery(unittest.TestCase):
    """Batching, retries, refusals and the queue bound, each on its own server."""

    def setUp(self):
        self.rec = Receiver().start()
        self.addCleanup(self.rec.stop)

    def start(self, *extra):
        srv = herald(self.rec, "--webhook.retry-min-delay", "50ms", "--webhook.retry-max-delay", "300ms",
                     *extra, events="publication")
        srv.start()
        self.addCleanup(self.stop_clean, srv)
        api = Api(srv)
        self.addCleanup(api.close)
        return srv, api

    def stop_clean(self, srv):
        rc = srv.stop()
        self.assertEqual(rc, 0, "a clean exit (under ASan: no leak)\n" + srv.output(30))

    def publish(self, api, chans, n):
        for i in range(n):
            for ch in chans:
                api.publish(ch, {"i": i})

    def offsets(self, ch):
        return [e["offset"] for e in self.rec.events("publication") if e["channel"] == ch]

    def test_batching(self):
        srv, api = self.start("--webhook.batch-max-events", "20", "--webhook.batch-max-delay", "200ms")
        ch = "b" + os.urandom(4).hex()
        t0 = time.monotonic()
        api.batch_publish(ch, [{"i": i} for i in range(100)])
        self.rec.wait(lambda e: len(e) >= 100)
        self.assertEqual(self.offsets(ch), list(range(1, 101)))
        self.assertLessEqual(len(self.rec.batches), 8, "100 events in batches of up to 20")
        self.assertLessEqual(max(len(b) for _, b in self.rec.batches), 20)
        # one lone event waits for company at most batch_max_delay (+ a wheel tick and scheduling)
        t1 = time.monotonic()
        api.publish(ch, {"lone": True})
        self.rec.wait(lambda e: len(e) >= 101)
        self.assertLess(self.rec.batches[-1][0] - t1, 0.2 + 0.5 * SLOW)
        self.assertGreater(self.rec.batches[0][0] - t0, 0)

    def test_backend_restart_loses_nothing_and_keeps_order(self):
        srv, api = self.start("--webhook.batch-max-events", "7")
        chans = ["r" + os.urandom(4).hex() for _ in range(3)]
        self.rec.stop()
        self.publish(api, chans, 20)
        # a refused connection at least, then retries
        self.assertGreater(wait_webhook_info(api, lambda i: i["failed_attempts"] > 0)["failed_attempts"], 0)
        self.rec.start()  # the same port
        self.rec.wait(lambda e: len(e) >= 60, timeout=10)
        for ch in chans:
            self.assertEqual(self.offsets(ch), list(range(1, 21)), f"{ch}: all, once, in order")
        info = webhook_info(api)
        self.assertEqual((info["queued"], info["dropped"], info["sent"]), (0, 0, 60))
        self.assertIn("connection", info["last_error"])

    def test_500_and_timeout_are_retried(self):
        srv, api = self.start("--webhook.timeout", "300ms")
        ch = "t" + os.urandom(4).hex()
        self.rec.mode = "500"
        self.publish(api, [ch], 3)
        deadline = time.monotonic() + 5 * SLOW
        while self.rec.attempts < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        self.rec.mode = "hang"
        time.sleep(0.8 * SLOW)
        self.rec.mode = "ok"
        self.rec.wait(lambda e: len(e) >= 3, timeout=10)
        self.assertEqual(self.offsets(ch)[:3], [1, 2, 3])
        self.assertGreaterEqual(webhook_info(api)["failed_attempts"], 2)

    def test_4xx_drops_the_batch(self):
        srv, api = self.start()
        ch = "d" + os.urandom(4).hex()
        self.rec.mode = "400"
        self.publish(api, [ch], 3)
        info = wait_webhook_info(api, lambda i: i["rejected"] >= 3)
        self.assertEqual((info["rejected"], info["queued"]), (3, 0))
        self.assertIn("400", info["last_error"])
        attempts = self.rec.attempts
        self.rec.mode = "ok"
        api.publish(ch, {"after": True})
        self.rec.wait(lambda e: len(e) >= 1)
        self.assertEqual(self.offsets(ch), [4], "the refused batch is not sent again")
        self.assertEqual(self.rec.attempts, attempts + 1)

    def test_full_queue_drops_oldest(self):
        srv, api = self.start("--webhook.max-queued-events", "10", "--webhook.batch-max-events", "5")
        ch = "f" + os.urandom(4).hex()
        self.rec.stop()
        self.publish(api, [ch], 40)
        info = webhook_info(api)
        self.assertEqual(info["queued"], 10)
        self.assertEqual(info["dropped"], 30)
        self.rec.start()
        self.rec.wait(lambda e: len(e) >= 10, timeout=10)
        got = self.offsets(ch)
        self.assertEqual(len(got), 10)
        self.assertEqual(got, sorted(got))
        self.assertEqual(got[-5:], [36, 37, 38, 39, 40], "the newest are kept, the oldest waiting ones dropped")
        self.assertIn("queue full", srv.output())

    def test_full_queue_in_bytes_drops_oldest(self):
        """webhook.max_queued_bytes: large publication events are bounded by
        their bytes even while far fewer than max_queued_events wait."""
        srv, api = self.start("--webhook.max-queued-bytes", "8KiB", "--webhook.batch-max-events", "5")
        ch = "y" + os.urandom(4).hex()
        self.rec.stop()
        for i in range(40):
            api.publish(ch, {"i": i, "pad": "x" * 1500})
        info = webhook_info(api)
        self.assertLessEqual(info["queued_bytes"], 8192)
        self.assertGreater(info["queued_bytes"], 4096)
        self.assertLess(info["queued"], 10)
        self.assertEqual(info["queued"] + info["dropped"], 40)
        self.rec.start()
        self.rec.wait(lambda e: len(e) >= info["queued"], timeout=10)
        got = self.offsets(ch)
        self.assertEqual(got, sorted(got))
        self.assertEqual(got[-3:], [38, 39, 40], "the newest are kept, the oldest waiting ones dropped")
        self.assertIn("max_queued_bytes", srv.output())

    def test_shutdown_flushes(self):
        """SIGTERM: the events still waiting for batch_max_delay go out at
        once, with the client_disconnected of the connections drained."""
        srv = herald(self.rec, "--webhook.batch-max-delay", "60s", events="publication,client_disconnected")
        srv.start()
        api = Api(srv)
        ch = "s" + os.urandom(4).hex()
        self.publish(api, [ch], 3)
        api.close()

        async def go():
            c = await Native.open(srv)
            time.sleep(0.3 * SLOW)
            self.assertEqual(self.rec.events(), [], "batch_max_delay holds them")
            t0 = time.monotonic()
            # the client answers the server's close while herald drains
            self.assertEqual(await asyncio.get_running_loop().run_in_executor(None, srv.stop), 0)
            self.assertLess(time.monotonic() - t0, 4 * SLOW)
            await c.close()
        run(go())
        self.assertEqual(self.offsets(ch), [1, 2, 3])
        disc = self.rec.events("client_disconnected")
        self.assertEqual(len(disc), 1)
        self.assertEqual((disc[0]["code"], disc[0]["reason"]), (1001, "going away"))

    def test_shutdown_gives_up_after_flush_timeout(self):
        srv = herald(self.rec, "--webhook.flush-timeout", "300ms", events="publication")
        srv.start()
        api = Api(srv)
        self.publish(api, ["g" + os.urandom(4).hex()], 3)
        api.close()
        self.rec.stop()  # nobody answers any more
        t0 = time.monotonic()
        self.assertEqual(srv.stop(), 0)
        self.assertLess(time.monotonic() - t0, 0.3 + 2 * SLOW)
        self.assertIn("webhook: 3 event(s) not delivered at shutdown", srv.output())

    def test_namespace_override(self):
        other = Receiver().start()
        self.addCleanup(other.stop)
        srv, api = self.start("--namespace.arch.webhook_url", other.url,
                              "--namespace.arch.webhook_events", "publication")
        api.publish("arch:x", {"a": 1})
        api.publish("plain", {"b": 1})
        other.wait(lambda e: len(e) >= 1)
        self.rec.wait(lambda e: len(e) >= 1)
        self.assertEqual([e["channel"] for e in other.events()], ["arch:x"])
        self.assertEqual([e["channel"] for e in self.rec.events()], ["plain"])


if __name__ == "__main__":
    main()
