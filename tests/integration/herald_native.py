"""herald_native - helpers for tests of Herald's native protocol (/ws) and
server HTTP API (/api), written from docs/protocol.md and docs/api.md.

  Native   a native-protocol client over Debian's python3-websockets (10.4,
           asyncio API): numbered commands, replies matched by id, pushes in a
           queue, a log of which frame each reply line arrived in.
  Api      a blocking keep-alive HTTP client for POST /api/<method> (raw
           sockets from herald_testlib), checking the documented error body
           {"error": str, "status": int}.
  run      asyncio.run with a bound (stretched under sanitizers).
"""

import asyncio
import json
import os
import socket
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from herald_testlib import SLOW, ConnectionClosed as HttpClosed, HeraldTestCase, HttpConn  # noqa: E402

import msgpack  # noqa: E402  (Debian python3-msgpack)
import websockets  # noqa: E402
from websockets.exceptions import ConnectionClosed  # noqa: E402

API_KEY = "testkey"

# Every error code of docs/protocol.md with its documented message and temporary flag.
ERRORS = {
    100: ("internal server error", True),
    101: ("unauthorized", False),
    102: ("unknown channel", False),
    103: ("permission denied", False),
    104: ("method not found", False),
    105: ("already subscribed", False),
    106: ("limit exceeded", False),
    107: ("bad request", False),
    108: ("not available", False),
    109: ("token expired", False),
    110: ("expired", False),
    111: ("too many requests", True),
    112: ("unrecoverable position", False),
    113: ("not subscribed", False),
    114: ("not connected", False),
    115: ("message too large", False),
    116: ("backend unavailable", True),
    117: ("storage unavailable", True),
}


def run(coro, timeout=60):
    async def bounded():
        return await asyncio.wait_for(coro, timeout * SLOW)
    return asyncio.run(bounded())


class ReplyError(AssertionError):
    pass


class Native:
    """One native-protocol connection to /ws.

    c = await Native.open(server)              # connects (command connect) too
    res = await c.result("subscribe", {"channel": "news"})
    err = await c.error("subscribe", {"channel": "news"})   # asserts an error reply
    push = await c.push()                      # next push ({"pub": ...}, ...)
    """

    def __init__(self, ws, encoding="json"):
        self.ws = ws
        self.encoding = encoding     # "json" (text frames) or "msgpack" (binary frames, herald.msgpack)
        self.next_id = 1
        self.waiting = {}            # id -> Future
        self.pushes = asyncio.Queue()
        self.reply_log = []          # (frame number, id) per reply line, in arrival order
        self.unexpected = []         # replies nobody waited for
        self.frames = 0
        self.reader_error = None
        self.pub_handler = None      # when set: f(line) for every '{"pub":' line (fast path)
        self.closed = asyncio.Event()
        self.connect_result = None
        self.msgpack_frames = []     # msgpack: the objects of each frame
        self.task = asyncio.ensure_future(self._read())

    @classmethod
    async def open(cls, server, connect=True, path="/ws", encoding="json", subprotocols=None, compression=None,
                   **connect_params):
        if subprotocols is None and encoding == "msgpack":
            subprotocols = ["herald.msgpack"]
        ws = await websockets.connect(server.ws_url(path), compression=compression, max_size=None,
                                      ping_interval=None, open_timeout=10 * SLOW, close_timeout=3,
                                      max_queue=None, subprotocols=subprotocols)
        c = cls(ws, encoding)
        if connect:
            c.connect_result = await c.result("connect", connect_params)
        return c

    @property
    def client_id(self):
        return self.connect_result["client"]

    async def _read(self):
        try:
            async for msg in self.ws:
                self.frames += 1
                if self.encoding == "msgpack":
                    if not isinstance(msg, bytes):
                        raise AssertionError(f"server sent a text frame on the MessagePack protocol: {msg[:100]!r}")
                    unpacker = msgpack.Unpacker(raw=False, strict_map_key=True)
                    unpacker.feed(msg)
                    items = list(unpacker)  # every map must be complete: a truncated one raises here
                    self.msgpack_frames.append(items)
                elif isinstance(msg, bytes):
                    raise AssertionError(f"server sent a binary frame on the JSON protocol: {msg[:100]!r}")
                else:
                    items = [ln for ln in msg.split("\n") if ln.strip()]
                for line in items:
                    if self.pub_handler is not None and isinstance(line, str) and '"pub"' in line[:12]:
                        self.pub_handler(line)
                        continue
                    obj = json.loads(line) if isinstance(line, str) else line
                    if not isinstance(obj, dict):
                        raise AssertionError(f"server sent a non-object line: {line[:200]!r}")
                    if "id" in obj:
                        self.reply_log.append((self.frames, obj["id"]))
                        fut = self.waiting.pop(obj["id"], None)
                        if fut is not None and not fut.done():
                            fut.set_result(obj)
                        else:
                            self.unexpected.append(obj)
                    else:
                        self.pushes.put_nowait(obj)
        except ConnectionClosed:
            pass
        except Exception as e:  # noqa: BLE001 - reported to the waiting test
            self.reader_error = e
        finally:
            self.closed.set()
            for fut in self.waiting.values():
                if not fut.done():
                    fut.set_exception(ReplyError(
                        f"connection closed (code {self.ws.close_code} {self.ws.close_reason!r}) "
                        f"while waiting for a reply; reader error: {self.reader_error!r}"))
            self.waiting.clear()

    # -- sending ---------------------------------------------------------------

    def _new_id(self):
        i = self.next_id
        self.next_id += 1
        return i

    def prepare(self, method, params=None, cid=None):
        """(id, line, future) for one command (not sent)."""
        if cid is None:
            cid = self._new_id()
        fut = asyncio.get_event_loop().create_future()
        self.waiting[cid] = fut
        obj = {"id": cid, method: params if params is not None else {}}
        if self.encoding == "msgpack":
            return cid, msgpack.packb(obj, use_bin_type=True), fut
        return cid, json.dumps(obj, separators=(",", ":")), fut

    async def send_frame(self, commands):
        """Send several commands in ONE frame; commands: list of (method, params) or
        (id, method, params). Returns the list of (id, future)."""
        out, lines = [], []
        for cmd in commands:
            if len(cmd) == 3:
                cid, method, params = cmd
            else:
                cid, (method, params) = None, cmd
            cid, line, fut = self.prepare(method, params, cid)
            out.append((cid, fut))
            lines.append(line)
        await self.ws.send(b"".join(lines) if self.encoding == "msgpack" else "\n".join(lines))
        return out

    async def call(self, method, params=None, timeout=10):
        """Send one command; return the whole reply object."""
        cid, line, fut = self.prepare(method, params)
        await self.ws.send(line)
        try:
            reply = await asyncio.wait_for(fut, timeout * SLOW)
        except asyncio.TimeoutError:
            self.waiting.pop(cid, None)
            raise AssertionError(f"no reply to {line} within {timeout * SLOW}s")
        if reply.get("id") != cid:
            raise AssertionError(f"reply id mismatch: sent {line}, got {reply}")
        return reply

    async def result(self, method, params=None, timeout=10):
        reply = await self.call(method, params, timeout)
        if "result" not in reply or "error" in reply:
            raise ReplyError(f"{method} {json.dumps(params)}: expected a result, got {reply}")
        if not isinstance(reply["result"], dict):
            raise ReplyError(f"{method}: result is not an object: {reply}")
        return reply["result"]

    async def error(self, method, params=None, code=None, timeout=10):
        reply = await self.call(method, params, timeout)
        if "error" not in reply or "result" in reply:
            raise ReplyError(f"{method} {json.dumps(params)}: expected error {code}, got {reply}")
        check_error(reply["error"], code, f"{method} {json.dumps(params)}")
        return reply["error"]

    # -- pushes ----------------------------------------------------------------

    async def push(self, timeout=5):
        try:
            return await asyncio.wait_for(self.pushes.get(), timeout * SLOW)
        except asyncio.TimeoutError:
            raise AssertionError(f"no push within {timeout * SLOW}s (close code {self.ws.close_code}, "
                                 f"reader error {self.reader_error!r})")

    async def pubs(self, n, timeout=10, channel=None):
        """The next n pushes, which must all be pubs (of `channel` if given)."""
        out = []
        deadline = time.monotonic() + timeout * SLOW
        while len(out) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"got {len(out)} of {n} pubs within {timeout * SLOW}s: last {out[-3:]}")
            p = await self.push(left / SLOW)
            if "pub" not in p:
                raise AssertionError(f"expected a pub push, got {p}")
            if channel is not None and p["pub"].get("channel") != channel:
                raise AssertionError(f"pub for {p['pub'].get('channel')!r}, expected {channel!r}: {p}")
            out.append(p["pub"])
        return out

    async def quiet(self, seconds=0.3):
        """Assert no push arrives within `seconds`; returns nothing."""
        await asyncio.sleep(seconds * SLOW)
        if not self.pushes.empty():
            items = []
            while not self.pushes.empty():
                items.append(self.pushes.get_nowait())
            raise AssertionError(f"unexpected pushes: {items[:5]}{' ...' if len(items) > 5 else ''}")

    def drain(self):
        items = []
        while not self.pushes.empty():
            items.append(self.pushes.get_nowait())
        return items

    close = None  # set below (shared with other reader-task clients)


async def close_reader(client):
    """Close client.ws and wait (bounded) for its reader task client.task to end."""
    try:
        await client.ws.close()
    except Exception:  # noqa: BLE001
        pass
    try:
        await asyncio.wait_for(client.task, 5 * SLOW)
    except Exception:  # noqa: BLE001
        pass


Native.close = close_reader


def check_error(err, code=None, what=""):
    """An error object as documented: {"code": int, "message": str, "temporary": bool}."""
    if not isinstance(err, dict):
        raise AssertionError(f"{what}: error is not an object: {err!r}")
    if not isinstance(err.get("code"), int) or not isinstance(err.get("message"), str) \
            or not isinstance(err.get("temporary"), bool):
        raise AssertionError(f"{what}: error must be {{code:int, message:str, temporary:bool}}, got {err!r}")
    if code is not None:
        if err["code"] != code:
            raise AssertionError(f"{what}: expected error {code} {ERRORS[code][0]!r}, got {err!r}")
        msg, temp = ERRORS[code]
        if err["message"] != msg or err["temporary"] != temp:
            raise AssertionError(f"{what}: error {code} should be message {msg!r} temporary {temp}, got {err!r}")


# ---------------------------------------------------------------------------
# HTTP API
# ---------------------------------------------------------------------------


class ApiError(AssertionError):
    pass


class Api:
    """Blocking client for POST /api/<method> over one keep-alive connection."""

    def __init__(self, server, key=API_KEY, timeout=10.0):
        self.addr = server.addr
        self.key = key
        self.timeout = timeout
        self.conn = None

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def raw(self, path, body=b"", method="POST", headers=None, auth=True):
        """Send one request; returns the herald_testlib Response."""
        if isinstance(body, str):
            body = body.encode("utf-8")
        hdrs = []
        if auth and self.key is not None:
            hdrs.append(("Authorization", f"apikey {self.key}"))
        hdrs += list(headers.items()) if isinstance(headers, dict) else list(headers or [])
        for attempt in range(2):
            fresh = self.conn is None
            if fresh:
                self.conn = HttpConn(self.addr, timeout=self.timeout)
            try:
                resp = self.conn.request(method, path, hdrs, body)
            except (HttpClosed, BrokenPipeError, ConnectionResetError):
                # A kept-alive connection the server closed meanwhile: retry once on a new one.
                self.close()
                if fresh or attempt:
                    raise
                continue
            if (resp.header("Connection") or "").lower() == "close":
                self.close()
            return resp
        raise AssertionError("unreachable")

    def call(self, method, params=None, expect=200):
        """POST /api/<method> with a JSON body; assert the status; return the parsed body."""
        body = params if isinstance(params, (bytes, str)) else json.dumps(params if params is not None else {})
        resp = self.raw(f"/api/{method}", body)
        try:
            data = resp.json()
        except ValueError:
            raise ApiError(f"/api/{method}: body is not JSON: {resp!r}")
        if resp.status != expect:
            raise ApiError(f"/api/{method} {str(body)[:200]}: expected {expect}, got {resp.status} {data}")
        if expect != 200:
            check_api_error(data, expect, f"/api/{method}")
        elif not isinstance(data, dict):
            raise ApiError(f"/api/{method}: 200 body is not an object: {data!r}")
        return data

    def publish(self, channel, data, **extra):
        return self.call("publish", {"channel": channel, "data": data, **extra})

    def batch_publish(self, channel, datas):
        """Publish many through /api/batch; returns the list of results (all must succeed)."""
        cmds = [{"method": "publish", "params": {"channel": channel, "data": d}} for d in datas]
        res = self.call("batch", {"commands": cmds})
        replies = res.get("replies")
        if not isinstance(replies, list) or len(replies) != len(cmds):
            raise ApiError(f"batch: expected {len(cmds)} replies, got {str(res)[:300]}")
        out = []
        for r in replies:
            if "result" not in r:
                raise ApiError(f"batch publish failed: {r}")
            out.append(r["result"])
        return out


def check_api_error(data, status, what=""):
    if not isinstance(data, dict) or set(data) != {"error", "status"} \
            or not isinstance(data["error"], str) or not data["error"] \
            or type(data["status"]) is not int:
        raise ApiError(f"{what}: error body must be exactly {{\"error\": str, \"status\": int}}, got {data!r}")
    if data["status"] != status:
        raise ApiError(f"{what}: error body status {data['status']} != HTTP status {status}: {data!r}")


def percentile(values, p):
    if not values:
        return float("nan")
    v = sorted(values)
    k = min(len(v) - 1, max(0, int(round(p / 100.0 * (len(v) - 1)))))
    return v[k]


def small_rcvbuf_socket(addr, rcvbuf=4096, timeout=10.0):
    """A TCP socket with a small receive buffer (set before connect, so the window
    stays small)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(timeout * SLOW)
    s.connect(addr)
    return s


class ApiTestCase(HeraldTestCase):
    """HeraldTestCase whose server knows API_KEY; self.api is a fresh Api client per test."""
    server_args = ("--api-key", API_KEY)

    def setUp(self):
        super().setUp()
        self.api = Api(self.server)

    def tearDown(self):
        self.api.close()
        super().tearDown()
