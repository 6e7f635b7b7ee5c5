#!/usr/bin/env python3
"""Issue 13, item 1 (the one set of operations, src/ops): what a client sees
when an operation's rules and a front end's own mechanics both refuse.

- Order of checks (native /ws and /poll, both hr_session): history and
  presence run every rule (name, namespace, permission, presence enabled)
  before the session reserves room in its reply budget
  (channels.reply_budget), so a client that is denied AND out of budget gets
  103 (108 for presence disabled), not 111, and a denied request leaves the
  budget to the next allowed one. The budget is made scarce with a 64 KiB
  budget, a 64 KiB max_reply_size and the memory-delayed engine (an
  answered reservation is held until the engine answers on a later turn).
- Server API names: the `channels` filter and the server `unsubscribe`
  answer a bad name with the same 400 JSON as /api/publish for that name;
  unsubscribe and disconnect name the bound their target or reason passed.
- A subscription's side effects are the operations' (hr_op_subscribe_commit,
  hr_op_leave): a /ws/raw or /sse client with a connection token joins and
  leaves with the same push as a native client with that token (its info
  included), and above channels.join_leave_max_subscribers no front end's
  join is pushed.
"""

import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
import urllib.parse

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from herald_testlib import SLOW, HeraldTestCase, HttpConn, RawWS, build_request, main  # noqa: E402
from herald_native import API_KEY, Api  # noqa: E402
from herald_native import Native, run  # noqa: E402
from emu_client import Poller  # noqa: E402
from test_auth import AUD, SECRET, conn_token  # noqa: E402  (tokens made here, not by herald)

import websockets  # noqa: E402

CONFIG = f"""
[server]
api_key = "{API_KEY}"

[channels]
presence = true

[namespace.open]
history_for = "anyone"
presence_for = "anyone"

[namespace.closed]
history_for = "none"
presence_for = "none"

[namespace.nopres]
presence = false
"""

# One frame: an allowed history takes the whole budget (held until the
# delayed engine answers), then the refused commands, then an allowed one
# that finds no budget left.
EXHAUSTING_FRAME = [
    ("history", "open:a", "result"),
    ("history", "closed:a", 103),        # denied: the refusal, not 111
    ("presence", "closed:a", 103),       # denied
    ("presence", "nopres:a", 108),       # presence disabled
    ("history", "open:b", 111),          # allowed, but the budget is spent
]
# A denied request first: it takes nothing from the budget.
DENIED_FIRST_FRAME = [
    ("history", "closed:a", 103),
    ("presence", "closed:a", 103),
    ("history", "open:a", "result"),
]


def frame(first_id, cmds):
    return [{"id": first_id + i, op: {"channel": ch}} for i, (op, ch, _) in enumerate(cmds)]


def answer(rep):
    return "result" if "result" in rep else rep["error"]["code"]


def read_replies(ws, ids, timeout=10.0):
    out = {}
    deadline = time.monotonic() + timeout * SLOW
    while set(out) != set(ids):
        left = deadline - time.monotonic()
        assert left > 0, f"replies {sorted(out)} of {ids}"
        _, payload = ws.recv_message(timeout=left / SLOW)
        for line in payload.decode().split("\n"):
            if line.strip():
                obj = json.loads(line)
                if "id" in obj:
                    out[obj["id"]] = obj
    return out


class OrderOfChecks(HeraldTestCase):
    server_workers = 1

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="herald-ops-order-")
        cls.config = f"{cls.dir}/herald.toml"
        with open(cls.config, "w") as f:
            f.write(CONFIG)
        cls.server_args = ("--config", cls.config, "--engine", "memory-delayed",
                           "--channels.reply-budget", "64KiB", "--channels.max-reply-size", "64KiB")
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def check(self, cmds, got, where):
        want = [w for _, _, w in cmds]
        self.assertEqual(got, want, f"{where}: {[(op, ch) for op, ch, _ in cmds]}")

    def native_frame(self, cmds):
        ws = RawWS.connect(self.server.addr, "/ws", timeout=10.0)
        try:
            ws.send_text(json.dumps({"id": 1, "connect": {}}))
            self.assertIn("result", read_replies(ws, [1])[1])
            msgs = frame(10, cmds)
            ws.send_text("\n".join(json.dumps(m) for m in msgs))
            reps = read_replies(ws, [m["id"] for m in msgs])
            return [answer(reps[m["id"]]) for m in msgs]
        finally:
            ws.close_socket()

    def poll_frame(self, cmds):
        p = Poller(self.server)
        try:
            p.open()
            p.wait_reply(p.command("connect"))
            msgs = frame(10, cmds)
            p.send(*msgs)
            return [answer(p.wait_reply(m["id"])) for m in msgs]
        finally:
            p.close()

    def test_native_denied_and_out_of_budget_gets_the_refusal(self):
        self.check(EXHAUSTING_FRAME, self.native_frame(EXHAUSTING_FRAME), "/ws")

    def test_native_denied_request_leaves_the_budget(self):
        self.check(DENIED_FIRST_FRAME, self.native_frame(DENIED_FIRST_FRAME), "/ws")

    def test_poll_denied_and_out_of_budget_gets_the_refusal(self):
        self.check(EXHAUSTING_FRAME, self.poll_frame(EXHAUSTING_FRAME), "/poll")

    def test_poll_denied_request_leaves_the_budget(self):
        self.check(DENIED_FIRST_FRAME, self.poll_frame(DENIED_FIRST_FRAME), "/poll")


# Names that are bad both as a channel and as a pattern.
BAD_NAMES = ["bad name", "", ":x", "chat:x>y", "x" * 2000]


class ApiNames(HeraldTestCase):
    server_args = ("--api-key", API_KEY)

    def setUp(self):
        self.api = Api(self.server)

    def tearDown(self):
        self.api.close()
        super().tearDown()

    def error_of(self, method, params):
        resp = self.api.raw(f"/api/{method}", json.dumps(params).encode())
        return resp.status, resp.json()

    def test_bad_names_get_the_publish_answer(self):
        for name in BAD_NAMES:
            with self.subTest(name=name[:20]):
                want = self.error_of("publish", {"channel": name, "data": 1})
                self.assertEqual(want[0], 400, want)
                self.assertEqual(self.error_of("channels", {"pattern": name}), want, "channels filter")
                self.assertEqual(self.error_of("unsubscribe", {"channel": name, "user": "alice"}), want,
                                 "server unsubscribe")

    def test_server_command_bounds(self):
        """unsubscribe and disconnect: the target's and reason's bounds, named (the operations' words)."""
        cases = [
            ({"user": "u" * 256}, "user must be at most 255 bytes"),
            ({"client": "c" * 65}, "client must be at most 64 bytes"),
            ({}, "user or client is required"),
            ({"user": "alice", "reason": "r" * 121}, "reason must be a string of at most 120 bytes"),
        ]
        for params, words in cases:
            for method, extra in (("unsubscribe", {"channel": "chat:a"}), ("disconnect", {})):
                with self.subTest(method=method, params=str(params)[:30]):
                    self.assertEqual(self.error_of(method, dict(params, **extra)), (400, {"error": words, "status": 400}))
        self.assertEqual(self.error_of("disconnect", {"user": "alice", "code": 2999}),
                         (400, {"error": "code must be an integer from 3000 to 4999", "status": 400}))
        self.assertEqual(self.api.call("disconnect", {"user": "alice", "code": 4999, "reason": "r" * 120}), {})

    def test_good_names_still_pass(self):
        self.assertEqual(self.api.call("channels", {"pattern": "chat:*"}), {"channels": {}})
        self.assertEqual(self.api.call("unsubscribe", {"channel": "chat:*", "user": "alice"}), {})
        self.assertEqual(self.api.call("unsubscribe", {"channel": "chat:a", "client": "c1"}), {})


SIDE_CONFIG = f"""
[server]
api_key = "{API_KEY}"

[auth]
token_hmac_secret = "{SECRET}"
audience = "{AUD}"

[channels]
join_leave_max_subscribers = 3

[namespace.jl]
join_leave = true
presence = true
"""
INFO = {"name": "Ann", "n": 1}


class SideEffects(HeraldTestCase):
    """Native, raw and SSE subscribers of one channel: the same join/leave."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="herald-ops-side-")
        cls.config = f"{cls.dir}/herald.toml"
        with open(cls.config, "w") as f:
            f.write(SIDE_CONFIG)
        cls.server_args = ("--config", cls.config)
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def url(self, path, ch, user):
        return path + "?" + urllib.parse.urlencode({"channel": ch, "token": conn_token(user, info=INFO)})

    async def subscribe(self, kind, ch):
        """Subscribe to ch as `kind` (native, raw, sse) with a token for user `kind`; returns an async closer."""
        if kind == "native":
            c = await Native.open(self.server, token=conn_token(kind, info=INFO))
            await c.result("subscribe", {"channel": ch})
            return c.close
        if kind == "raw":
            ws = await websockets.connect(self.server.ws_url(self.url("/ws/raw", ch, kind)),
                                          open_timeout=10 * SLOW, close_timeout=3, ping_interval=None)
            return ws.close
        conn = HttpConn(self.server.addr, timeout=10.0)
        conn.send(build_request("GET", self.url("/sse", ch, kind)))
        head = conn.read_head(time.monotonic() + 10 * SLOW)
        self.assertTrue(head.startswith(b"HTTP/1.1 200 "), head)

        async def close():
            conn.close()
        return close

    def test_every_front_end_joins_and_leaves_alike(self):
        async def go():
            watcher = await Native.open(self.server)
            try:
                await watcher.result("subscribe", {"channel": "jl:a"})
                self.assertEqual((await watcher.push())["join"]["info"]["user"], "")  # its own join
                for kind in ("native", "raw", "sse"):
                    close = await self.subscribe(kind, "jl:a")
                    push = await watcher.push()
                    self.assertIn("join", push, kind)
                    info = push["join"]["info"]
                    self.assertEqual((info["user"], info.get("info")), (kind, INFO), f"{kind} join: {push}")
                    await close()
                    push = await watcher.push()
                    self.assertIn("leave", push, kind)
                    self.assertEqual(push["leave"]["info"], info, f"{kind} leave: {push}")
            finally:
                await watcher.close()
        run(go())

    def test_no_join_above_the_cap_from_any_front_end(self):
        async def go():
            watchers = [await Native.open(self.server) for _ in range(3)]  # the cap: 3 subscribers
            closers = []
            try:
                for w in watchers:
                    await w.result("subscribe", {"channel": "jl:b"})
                await asyncio.sleep(0.2 * SLOW)
                watchers[0].drain()
                for kind in ("native", "raw", "sse"):
                    closers.append(await self.subscribe(kind, "jl:b"))
                    await watchers[0].quiet(0.3)
            finally:
                for close in closers:
                    await close()
                for w in watchers:
                    await w.close()
        run(go())


if __name__ == "__main__":
    main()
