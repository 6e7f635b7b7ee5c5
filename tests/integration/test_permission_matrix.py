#!/usr/bin/env python3
"""test_permission_matrix - one table of channel permissions (docs/auth.md,
"Per-namespace permissions") run against every front end that can express
the operation, each expected to give the same allow/deny answer.

Axes:
  client     anonymous | user (connection token, sub "alice") | subtoken
             (the same user, holding a subscription token for the channel)
  rule       a namespace per setting: subscribe anyone/authenticated/token,
             user-limited channels (NAME#alice) for subscribe and publish,
             publish anyone/authenticated/subscribers/none (and the older
             allow_publish = false), history_for and presence_for
             anyone/authenticated/subscribers/none, plus history/presence
             "anyone" inside a subscribe = "token" namespace
  operation  subscribe | publish | history | presence, done by a client that
             is (subscribed=yes) or is not (subscribed=no) subscribed to the
             channel first (subtoken clients subscribe with their token)

Front ends and how each one's deny looks on the wire:
  ws-json, ws-msgpack  /ws native protocol: error 103
  poll                 /poll/open + /poll/send + /poll: error 103 in the reply line
  stream               /stream + /stream/send: error 103 on the stream
  raw                  /ws/raw?channel=C(&token=): subscribe = the handshake
                       (101 vs 403), publish = a text message (echoed back to
                       the subscribed publisher vs close 3503); publishing
                       is always done subscribed
  sse                  /sse?channel=C(&token=&sub_token=): 200 vs 403

The expected answer comes from the documented rules (expected() below), not
from any front end. A cell that a front end answers differently fails;
KNOWN_GAPS names the cells that disagree today with the reason, so the
suite is green while the gap stays visible (a listed cell that starts
agreeing fails too, so the list is kept true).
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
from herald_testlib import SLOW, HttpConn, build_request, main  # noqa: E402
from herald_native import API_KEY, ApiTestCase, Native, close_reader, run  # noqa: E402
from emu_client import Poller, Stream  # noqa: E402
from test_auth import AUD, SECRET, conn_token, sub_token as user_sub_token  # noqa: E402  (tokens made here, not by herald)

import websockets  # noqa: E402
from websockets.exceptions import ConnectionClosed, InvalidStatusCode  # noqa: E402

USER = "alice"

# namespace -> its settings (everything else: [channels] defaults)
NAMESPACES = {
    "s_any": {"subscribe": "anyone"},
    "s_auth": {"subscribe": "authenticated"},
    "s_tok": {"subscribe": "token"},
    "p_any": {"publish": "anyone"},
    "p_auth": {"publish": "authenticated"},
    "p_subs": {"publish": "subscribers"},
    "p_none": {"publish": "none"},
    "p_legacy": {"allow_publish": "false"},
    "h_any": {"history_for": "anyone"},
    "h_auth": {"history_for": "authenticated"},
    "h_subs": {"history_for": "subscribers"},
    "h_none": {"history_for": "none"},
    "h_tok": {"subscribe": "token", "history_for": "anyone"},
    "r_any": {"presence_for": "anyone"},
    "r_auth": {"presence_for": "authenticated"},
    "r_subs": {"presence_for": "subscribers"},
    "r_none": {"presence_for": "none"},
    "r_tok": {"subscribe": "token", "presence_for": "anyone"},
    "u_sub": {},                                   # user-limited channels (NAME#alice): every front end, every rule
    "u_pub": {"publish": "anyone"},
}
USER_LIMITED = {"u_sub", "u_pub"}
OP_NAMESPACES = {
    "subscribe": ["s_any", "s_auth", "s_tok", "u_sub"],
    "publish": ["p_any", "p_auth", "p_subs", "p_none", "p_legacy", "u_pub"],
    "history": ["h_any", "h_auth", "h_subs", "h_none", "h_tok"],
    "presence": ["r_any", "r_auth", "r_subs", "r_none", "r_tok"],
}
CLIENTS = ("anonymous", "user", "subtoken")

# Front end -> the operations it can express and whether it can act while
# (not) subscribed. None: subscribe is the operation itself.
FRONT_ENDS = {
    "ws-json": {"subscribe": (None,), "publish": (False, True), "history": (False, True), "presence": (False, True)},
    "ws-msgpack": {"subscribe": (None,), "publish": (False, True), "history": (False, True),
                   "presence": (False, True)},
    "poll": {"subscribe": (None,), "publish": (False, True), "history": (False, True), "presence": (False, True)},
    "stream": {"subscribe": (None,), "publish": (False, True), "history": (False, True), "presence": (False, True)},
    "raw": {"subscribe": (None,), "publish": (True,)},
    "sse": {"subscribe": (None,)},
}

# Cells a front end answers differently today: (front end, op, namespace,
# client, subscribed) -> why. Empty when every front end agrees.
KNOWN_GAPS = {}


def setting(ns, key):
    s = NAMESPACES[ns]
    if key == "publish" and s.get("allow_publish") == "false":
        return "none"
    return s.get(key, "anyone")


def may_subscribe_without_token(ns, client):
    rule = setting(ns, "subscribe")
    return rule == "anyone" or (rule == "authenticated" and client != "anonymous")


def can_subscribe(ns, client):
    if ns in USER_LIMITED and client == "anonymous":
        return False  # NAME#alice: only alice, whatever the token
    return may_subscribe_without_token(ns, client) or client == "subtoken"


def expected(op, ns, client, subscribed):
    """The documented answer (docs/auth.md): True = allowed."""
    user = client != "anonymous"
    if op == "subscribe":
        return can_subscribe(ns, client)
    if op == "publish":
        if ns in USER_LIMITED and not user:
            return False
        rule = setting(ns, "publish")
        return {"anyone": True, "authenticated": user, "subscribers": subscribed, "none": False}[rule]
    rule = setting(ns, "history_for" if op == "history" else "presence_for")
    if rule == "none":
        return False
    if subscribed:
        return True
    if rule == "subscribers" or (rule == "authenticated" and not user):
        return False
    return may_subscribe_without_token(ns, client)  # "who could subscribe without a subscription token"


def cells(front):
    for op, subs in FRONT_ENDS[front].items():
        for ns in OP_NAMESPACES[op]:
            for client in CLIENTS:
                for subscribed in subs:
                    if subscribed and not can_subscribe(ns, client):
                        continue  # that state cannot be reached
                    yield op, ns, client, subscribed


def channel(front, op, ns, client, subscribed):
    name = f"{ns}:{front}-{op}-{client}-{'s' if subscribed else 'n'}-{os.getpid()}"
    return name + "#" + USER if ns in USER_LIMITED else name


def subscribe_params(ch, client):
    return {"channel": ch, "token": user_sub_token(USER, ch)} if client == "subtoken" else {"channel": ch}


def verdict(front, what, reply):
    """A native reply line -> True (result) / False (error 103); anything else is a test failure."""
    if "result" in reply:
        return True
    err = reply.get("error") or {}
    if err.get("code") == 103:
        return False
    raise AssertionError(f"{front} {what}: neither a result nor error 103: {reply}")


def op_command(op, ch):
    if op == "publish":
        return "publish", {"channel": ch, "data": {"m": 1}}
    return op, {"channel": ch}


# ---- the front ends: each returns {cell: allowed} --------------------------------------------------------------


async def run_native(server, front):
    encoding = "msgpack" if front == "ws-msgpack" else "json"
    out, conns = {}, {}
    try:
        for client in CLIENTS:
            params = {} if client == "anonymous" else {"token": conn_token(USER)}
            conns[client] = await Native.open(server, encoding=encoding, **params)
        for cell in cells(front):
            op, ns, client, subscribed = cell
            c, ch = conns[client], channel(front, *cell)
            if op == "subscribe":
                out[cell] = verdict(front, cell, await c.call("subscribe", subscribe_params(ch, client)))
                continue
            if subscribed:
                await c.result("subscribe", subscribe_params(ch, client))
            out[cell] = verdict(front, cell, await c.call(*op_command(op, ch)))
    finally:
        for c in conns.values():
            await close_reader(c)
    return out


class EmuSession:
    """/poll or /stream: one session, commands POSTed, replies by id."""

    def __init__(self, server, front, client):
        self.front, self.next_id = front, 1
        self.poller = Poller(server)
        if front == "poll":
            self.stream = None
            self.poller.open()
        else:
            self.stream = Stream(server)
            assert b" 200 " in self.stream.status().split(b"\r\n")[0], self.stream.status()
            self.poller.session = self.stream.start()["session"]
        params = {} if client == "anonymous" else {"token": conn_token(USER)}
        reply = self.call("connect", params)
        assert "result" in reply, reply

    def call(self, method, params):
        cid = self.next_id
        self.next_id += 1
        path = f"/{self.front}/send?session={self.poller.session}"
        r = self.poller.request("POST", path, json.dumps({"id": cid, method: params}).encode())
        assert r.status == 202, r
        if self.stream is None:
            return self.poller.wait_reply(cid)
        deadline = time.monotonic() + 10 * SLOW
        while time.monotonic() < deadline:
            line = self.stream.next_line()
            if line.get("id") == cid:
                return line
        raise AssertionError(f"{self.front}: no reply {cid}")

    def close(self):
        self.poller.close()
        if self.stream is not None:
            self.stream.close()


def run_emu(server, front):
    out = {}
    sessions = {client: EmuSession(server, front, client) for client in CLIENTS}
    try:
        for cell in cells(front):
            op, ns, client, subscribed = cell
            s, ch = sessions[client], channel(front, *cell)
            if op == "subscribe":
                out[cell] = verdict(front, cell, s.call("subscribe", subscribe_params(ch, client)))
                continue
            if subscribed:
                reply = s.call("subscribe", subscribe_params(ch, client))
                assert "result" in reply, (cell, reply)
            out[cell] = verdict(front, cell, s.call(*op_command(op, ch)))
    finally:
        for s in sessions.values():
            s.close()
    return out


def url_query(ch, client, sub_param):
    q = {"channel": ch}
    if client != "anonymous":
        q["token"] = conn_token(USER)
    if client == "subtoken":
        q[sub_param] = user_sub_token(USER, ch)
    return urllib.parse.urlencode(q)


async def raw_cell(server, cell):
    op, ns, client, _ = cell
    ch = channel("raw", *cell)
    url = server.ws_url("/ws/raw?" + url_query(ch, client, "sub_token"))
    try:
        ws = await websockets.connect(url, open_timeout=10 * SLOW, close_timeout=3, ping_interval=None)
    except InvalidStatusCode as e:
        if e.status_code == 403:
            return False  # not subscribed: a publish cannot even be tried

        raise AssertionError(f"raw {cell}: handshake answered {e.status_code}")
    try:
        if op == "subscribe":
            return True
        await ws.send(json.dumps({"m": 1}))
        try:
            msg = await asyncio.wait_for(ws.recv(), 5 * SLOW)
        except ConnectionClosed:
            if ws.close_code == 3503:
                return False
            raise AssertionError(f"raw {cell}: closed {ws.close_code} {ws.close_reason!r}")
        assert json.loads(msg) == {"m": 1}, msg
        return True
    finally:
        await ws.close()


async def run_raw(server):
    return {cell: await raw_cell(server, cell) for cell in cells("raw")}


def run_sse(server):
    out = {}
    for cell in cells("sse"):
        op, ns, client, _ = cell
        with HttpConn(server.addr, timeout=10 * SLOW) as c:
            c.send(build_request("GET", "/sse?" + url_query(channel("sse", *cell), client, "sub_token")))
            status = int(c.read_head(time.monotonic() + 10 * SLOW).split(b" ", 2)[1])
        assert status in (200, 403), (cell, status)
        out[cell] = status == 200
    return out


CONFIG_HEAD = f"""
[server]
api_key = "{API_KEY}"

[auth]
token_hmac_secret = "{SECRET}"
audience = "{AUD}"

[channels]
presence = true
"""


class TestPermissionMatrix(ApiTestCase):
    maxDiff = None  # every disagreeing cell is listed
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="herald-matrix-")
        cls.config = f"{cls.dir}/herald.toml"
        with open(cls.config, "w") as f:
            f.write(CONFIG_HEAD)
            for ns, settings in NAMESPACES.items():
                f.write(f"\n[namespace.{ns}]\n")
                for k, v in settings.items():
                    f.write(f'{k} = {v}\n' if v in ("true", "false") else f'{k} = "{v}"\n')
        cls.server_args = ("--config", cls.config)
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def check(self, front, answers):
        wrong, healed = [], []
        for cell, got in sorted(answers.items(), key=str):
            want = expected(*cell)
            key = (front,) + cell
            if key in KNOWN_GAPS:
                if got == want:
                    healed.append(f"{key}: now agrees; remove it from KNOWN_GAPS")
                continue
            if got != want:
                wrong.append(f"{key}: {'allowed' if got else 'denied'}, expected {'allowed' if want else 'denied'}")
        self.assertTrue(answers, front)
        self.assertEqual(wrong + healed, [], f"{front}: {len(wrong)} of {len(answers)} cells disagree")

    def test_ws_json(self):
        self.check("ws-json", run(run_native(self.server, "ws-json")))

    def test_ws_msgpack(self):
        self.check("ws-msgpack", run(run_native(self.server, "ws-msgpack")))

    def test_poll(self):
        self.check("poll", run_emu(self.server, "poll"))

    def test_stream(self):
        self.check("stream", run_emu(self.server, "stream"))

    def test_raw(self):
        self.check("raw", run(run_raw(self.server)))

    def test_sse(self):
        self.check("sse", run_sse(self.server))

    def test_matrix_covers_every_cell(self):
        """Every (operation, rule, client) is checked by at least two front ends,
        and each rule gives both answers somewhere (the table is not all-allow)."""
        for op, namespaces in OP_NAMESPACES.items():
            fronts = [f for f in FRONT_ENDS if op in FRONT_ENDS[f]]
            self.assertGreaterEqual(len(fronts), 2, op)
            answers = {expected(op, ns, c, s) for ns in namespaces for c in CLIENTS for s in (False, True)}
            self.assertEqual(answers, {False, True}, op)


if __name__ == "__main__":
    main()
