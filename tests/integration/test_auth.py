#!/usr/bin/env python3
"""test_auth - token authentication and channel permissions (docs/auth.md),
against the real herald binary with Python websockets, raw HTTP and the
herald CLI:

- connection tokens: user, info in presence, channels subscribed on connect;
  bad signature, alg none, HS256 forged with the RSA public key, wrong aud,
  expired (109 + close 3005), unknown key -> 101 + close 3500;
- refresh: the server pushes refresh at exp, a refresh command keeps the
  connection, none -> disconnect 3005; refresh for another user refused;
- per-namespace rules: subscribe anyone/authenticated/token, subscription
  tokens bound to one channel and one user, user-limited channels
  (chat:#alice,bob), publish/history_for/presence_for;
- SSE with ?token=, Authorization: Bearer, ?sub_token=, 401 bodies, expiry;
  /poll with ?token= on open;
- SIGHUP key rotation (old key removed: its tokens refused; new key works;
  live connections untouched; a broken key file keeps the old keys);
- herald token (HMAC and RS256 with a private_key_file) and herald genconfig
  output accepted by herald serve; /api without key -> 401.
"""

import asyncio
import base64
import hashlib
import hmac
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from herald_testlib import SLOW, Herald, HeraldTestCase, HttpConn, RawWS, main, run_herald  # noqa: E402
from herald_native import Native, check_error, close_reader, run  # noqa: E402
from test_sse import SSE  # noqa: E402

SECRET = "test-secret-0123456789abcdefghijklmnopqrstuvwxyz"
OLD_SECRET = "old-secret-0123456789abcdefghijklmnopqrstuvwxyz"
NEW_SECRET = "new-secret-0123456789abcdefghijklmnopqrstuvwxyz"
AUD = "herald-test"


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def jwt(claims, secret=SECRET, alg="HS256", kid=None, aud=AUD, signature=None):
    """An HMAC token made here, independently of herald's signer."""
    header = {"alg": alg, "typ": "JWT"}
    if kid:
        header["kid"] = kid
    claims = dict(claims)
    if aud is not None:
        claims.setdefault("aud", aud)
    signing = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())
    if signature is None:
        h = {"HS256": hashlib.sha256, "none": None}[alg]
        key = secret if isinstance(secret, bytes) else secret.encode()
        signature = b64(hmac.new(key, signing.encode(), h).digest()) if h else ""
    return signing + "." + signature


def conn_token(user, ttl=3600, **extra):
    now = int(time.time())
    return jwt(dict({"sub": user, "iat": now, "exp": now + ttl}, **extra))


def sub_token(user, channel, ttl=3600, **kw):
    """A subscription token; user None: for anonymous connections (no sub)."""
    now = int(time.time())
    claims = {"channel": channel, "iat": now, "exp": now + ttl}
    if user is not None:
        claims["sub"] = user
    return jwt(claims, **kw)


def openssl(*args):
    subprocess.run(["openssl"] + list(args), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=60)


CONFIG = """
[server]
api_key = "testkey"

[auth]
token_hmac_secret = "{secret}"
audience = "{aud}"
refresh_grace = "2s"

[auth.key.rsa]
alg = "RS256"
public_key_file = "{dir}/rsa.pub.pem"
private_key_file = "{dir}/rsa.pem"

[channels]
presence = true

[namespace.private]
subscribe = "token"
publish = "subscribers"
history_for = "subscribers"
presence_for = "subscribers"

[namespace.members]
subscribe = "authenticated"
publish = "authenticated"

[namespace.ro]
publish = "none"

[namespace.open]
publish = "anyone"

[namespace.legacy]
allow_publish = false
allow_anonymous = false
"""


class AuthBase(HeraldTestCase):
    server_workers = 2

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="herald-auth-")
        openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", f"{cls.dir}/rsa.pem")
        openssl("pkey", "-in", f"{cls.dir}/rsa.pem", "-pubout", "-out", f"{cls.dir}/rsa.pub.pem")
        cls.config = f"{cls.dir}/herald.toml"
        with open(cls.config, "w") as f:
            f.write(CONFIG.format(secret=SECRET, aud=AUD, dir=cls.dir))
        cls.server_args = ("--config", cls.config)
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def cli_token(self, *args):
        r = run_herald("token", "--config", self.config, *args)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        return r.stdout.decode().strip()

    async def refused(self, token, code=101, close=3500, detail=None):
        """connect with token: error `code`, then the connection closes with `close`."""
        c = await Native.open(self.server, connect=False)
        err = await c.error("connect", {"token": token}, code=code)
        if detail:
            self.assertIn(detail, err.get("detail", ""))
        push = await c.push()
        self.assertEqual(push["disconnect"]["code"], close, push)
        self.assertEqual(push["disconnect"]["reconnect"], close < 3500, push)
        await asyncio.wait_for(c.closed.wait(), 5 * SLOW)
        self.assertEqual(c.ws.close_code, close)
        return err


class TestConnect(AuthBase):
    def test_token_gives_user_info_and_channels(self):
        async def t():
            tok = conn_token("alice", info={"name": "Alice"}, channels=["private:feed-a", "news-a"])
            c = await Native.open(self.server, token=tok)
            r = c.connect_result
            self.assertEqual(r["user"], "alice")
            self.assertTrue(r["expires"])
            self.assertTrue(3590 <= r["ttl"] <= 3600, r)
            # the token's channels are subscribed even where a subscription token would be needed
            self.assertEqual(set(r["subs"]), {"private:feed-a", "news-a"})
            self.assertEqual(r["subs"]["private:feed-a"]["channel"], "private:feed-a")
            pres = await c.result("presence", {"channel": "news-a"})
            entry = pres["clients"][c.client_id]
            self.assertEqual(entry["user"], "alice")
            self.assertEqual(entry["info"], {"name": "Alice"})
            # and the API sees the same
            await close_reader(c)
        run(t())

    def test_anonymous_without_token(self):
        async def t():
            c = await Native.open(self.server)
            self.assertNotIn("user", c.connect_result)
            await c.result("subscribe", {"channel": "open-news"})
            await c.error("subscribe", {"channel": "members:room"}, code=103)
            await c.error("subscribe", {"channel": "private:x"}, code=103)
            await c.error("subscribe", {"channel": "legacy:x"}, code=103)
            await close_reader(c)
        run(t())

    def test_bad_tokens_refused_at_connect(self):
        async def t():
            now = int(time.time())
            good = {"sub": "mallory", "exp": now + 600}
            await self.refused(jwt(good, secret="x" * 40), detail="signature")           # wrong secret
            await self.refused(jwt(good, alg="none"))                                     # alg none
            pub = open(f"{self.dir}/rsa.pub.pem", "rb").read()
            await self.refused(jwt(good, secret=pub))                                    # HS256 with the RSA key
            await self.refused(jwt(good, secret=pub, kid="rsa"), detail="algorithm")     # ... naming the RSA kid
            await self.refused(jwt(good, aud="other-app"))                               # wrong audience
            await self.refused(jwt(good, aud=None))                                      # no audience
            await self.refused(jwt({"sub": "mallory"}))                                  # no exp (require_exp)
            await self.refused(jwt(good, kid="nope"))                                    # unknown kid
            await self.refused("not.a.token")                                            # malformed
            await self.refused(sub_token("mallory", "private:x"))                        # subscription token
            # expired: a distinct error and a close code that says "get a new token and reconnect"
            await self.refused(jwt({"sub": "bob", "exp": now - 120}), code=109, close=3005)
        run(t())

    def test_rs256_token_from_herald_token(self):
        async def t():
            tok = self.cli_token("--key", "rsa", "--user", "rsa-user", "--ttl", "10m", "--channel", "rsa-news")
            header = json.loads(base64.urlsafe_b64decode(tok.split(".")[0] + "=="))
            self.assertEqual((header["alg"], header["kid"]), ("RS256", "rsa"))
            c = await Native.open(self.server, token=tok)
            self.assertEqual(c.connect_result["user"], "rsa-user")
            self.assertIn("rsa-news", c.connect_result["subs"])
            self.assertTrue(590 <= c.connect_result["ttl"] <= 600)
            await close_reader(c)
            # and the default key (token_hmac_secret), with info
            tok = self.cli_token("--user", "hmac-user", "--info", '{"role":"admin"}')
            c = await Native.open(self.server, token=tok)
            self.assertEqual(c.connect_result["user"], "hmac-user")
            pres = await c.result("subscribe", {"channel": "members:lobby"})
            self.assertEqual(pres["channel"], "members:lobby")
            p = await c.result("presence", {"channel": "members:lobby"})
            self.assertEqual(p["clients"][c.client_id]["info"], {"role": "admin"})
            await close_reader(c)
        run(t())

    def test_api_without_key_401(self):
        conn = HttpConn(self.server.addr)
        r = conn.request("POST", "/api/publish", [("Content-Type", "application/json")],
                         b'{"channel":"x","data":1}')
        self.assertEqual(r.status, 401)
        self.assertEqual(r.json()["status"], 401)
        conn.close()


class TestPermissions(AuthBase):
    def test_subscription_tokens(self):
        async def t():
            c = await Native.open(self.server, token=conn_token("alice"))
            await c.error("subscribe", {"channel": "private:a"}, code=103)
            await c.error("subscribe", {"channel": "private:b", "token": sub_token("alice", "private:a")}, code=103)
            await c.error("subscribe", {"channel": "private:a", "token": sub_token("bob", "private:a")}, code=103)
            await c.error("subscribe", {"channel": "private:a", "token": sub_token("alice", "private:a", ttl=-100)},
                          code=109)
            await c.error("subscribe", {"channel": "private:a",
                                        "token": sub_token("alice", "private:a", secret="y" * 40)}, code=103)
            r = await c.result("subscribe", {"channel": "private:a", "token": sub_token("alice", "private:a")})
            self.assertEqual(r["channel"], "private:a")
            await close_reader(c)
            anon = await Native.open(self.server)  # an anonymous client, with a token without sub
            await anon.error("subscribe", {"channel": "private:anon", "token": sub_token("alice", "private:anon")},
                             code=103)
            await anon.result("subscribe", {"channel": "private:anon", "token": sub_token(None, "private:anon")})
            await close_reader(anon)
        run(t())

    def test_user_limited_channels(self):
        async def t():
            alice = await Native.open(self.server, token=conn_token("alice"))
            await alice.error("subscribe", {"channel": "chat:#bob,carol"}, code=103)
            await alice.result("subscribe", {"channel": "chat:#alice,bob"})
            anon = await Native.open(self.server)
            await anon.error("subscribe", {"channel": "chat:#alice,bob"}, code=103)
            await close_reader(alice)
            await close_reader(anon)
        run(t())

    def test_publish_history_presence_rules(self):
        async def t():
            alice = await Native.open(self.server, token=conn_token("alice"))
            eve = await Native.open(self.server, token=conn_token("eve"))
            anon = await Native.open(self.server)
            ch = "private:room"
            await alice.result("subscribe", {"channel": ch, "token": sub_token("alice", ch)})
            await alice.result("publish", {"channel": ch, "data": {"t": 1}})           # a subscriber may
            await eve.error("publish", {"channel": ch, "data": {"t": 2}}, code=103)     # others may not
            await eve.error("history", {"channel": ch}, code=103)
            await eve.error("presence", {"channel": ch}, code=103)
            h = await alice.result("history", {"channel": ch})
            self.assertEqual([p["data"] for p in h["publications"]], [{"t": 1}])
            await alice.result("presence", {"channel": ch})
            await anon.error("publish", {"channel": "members:x", "data": 1}, code=103)   # authenticated only
            await eve.result("publish", {"channel": "members:x", "data": 1})
            await eve.error("publish", {"channel": "ro:x", "data": 1}, code=103)         # none
            await eve.error("publish", {"channel": "legacy:x", "data": 1}, code=103)     # allow_publish = false
            await anon.result("publish", {"channel": "open:x", "data": 1})               # opted in: anyone
            await eve.error("publish", {"channel": "news", "data": 1}, code=103)         # default: none
            for c in (alice, eve, anon):
                await close_reader(c)
        run(t())


class TestRefresh(AuthBase):
    def test_refresh_keeps_the_connection(self):
        async def t():
            c = await Native.open(self.server, token=conn_token("alice", ttl=2))
            self.assertLessEqual(c.connect_result["ttl"], 2)
            push = await c.push(timeout=6)
            self.assertIn("refresh", push)
            self.assertEqual(push["refresh"]["in"], 2)
            await c.error("refresh", {"token": conn_token("bob")}, code=101)            # another user
            r = await c.result("refresh", {"token": conn_token("alice", ttl=60)})
            self.assertTrue(r["expires"])
            self.assertTrue(55 <= r["ttl"] <= 60, r)
            await asyncio.sleep(3 * SLOW)                                               # past the grace
            await c.result("ping", {})
            self.assertIsNone(c.ws.close_code)
            await close_reader(c)
        run(t())

    def test_no_refresh_disconnects_3005(self):
        async def t():
            c = await Native.open(self.server, token=conn_token("alice", ttl=1))
            self.assertIn("refresh", await c.push(timeout=5))
            push = await c.push(timeout=6)
            self.assertEqual(push["disconnect"], {"code": 3005, "reason": "token expired", "reconnect": True})
            await asyncio.wait_for(c.closed.wait(), 5 * SLOW)
            self.assertEqual(c.ws.close_code, 3005)
        run(t())


def sse_path(*channels, **params):
    q = [("channel", ch) for ch in channels] + [(k, v) for k, v in params.items() if not isinstance(v, list)]
    for k, v in params.items():
        if isinstance(v, list):
            q += [(k, x) for x in v]
    return "/sse?" + urllib.parse.urlencode(q)


class TestHttpTransports(AuthBase):
    def test_sse_tokens(self):
        tok = conn_token("alice", channels=["private:sse-feed"])
        s = SSE(self.server, sse_path("chat:#alice,bob", "members:x", token=tok))
        self.assertEqual(s.status, 200, s.response.body)
        self.assertEqual(s.next().type, "connected")
        s.conn.close()
        # Authorization: Bearer works the same
        s = SSE(self.server, sse_path("members:y"), headers={"Authorization": "Bearer " + tok})
        self.assertEqual(s.status, 200, s.response.body)
        s.conn.close()
        # a subscription token opens a private channel (and subscribes to it)
        s = SSE(self.server, sse_path("private:sse-a", token=tok, sub_token=[sub_token("alice", "private:sse-a")]))
        self.assertEqual(s.status, 200, s.response.body)
        s.conn.close()
        refusals = [
            (sse_path("members:x"), 403, "anonymous"),
            (sse_path("private:sse-a", token=tok), 403, "subscription token"),
            (sse_path("private:sse-b", token=tok, sub_token=[sub_token("alice", "private:sse-a")]), 403,
             "subscription token"),
            (sse_path("private:sse-a", token=tok, sub_token=[sub_token("bob", "private:sse-a")]), 403,
             "another user"),
            (sse_path("chat:#bob,carol", token=tok), 403, "other users"),
            (sse_path("news", token=jwt({"sub": "x", "exp": int(time.time()) + 60}, secret="z" * 40)), 401,
             "invalid token"),
            (sse_path("news", token=jwt({"sub": "x", "exp": int(time.time()) - 120})), 401, "token expired"),
        ]
        for path, status, text in refusals:
            s = SSE(self.server, path)
            self.assertEqual(s.status, status, (path, s.response.body))
            body = json.loads(s.response.body)
            self.assertEqual(body["status"], status)
            self.assertIn(text, body["error"])
            if status == 401:
                self.assertIn("Bearer", s.response.header("WWW-Authenticate"))
            s.conn.close()

    def test_sse_token_expiry_ends_the_stream(self):
        s = SSE(self.server, sse_path("news-exp", token=conn_token("alice", ttl=1)))
        self.assertEqual(s.status, 200)
        self.assertEqual(s.next().type, "connected")
        ev = s.next(timeout=5)
        self.assertEqual(ev.type, "disconnect")
        self.assertEqual(ev.json()["code"], 3005)
        s.conn.close()

    def test_raw_tokens(self):
        """/ws/raw takes the same tokens as /sse (docs/auth.md): ?token= or a
        Bearer header (user, info, channels), ?sub_token=; a bad one is a 401
        before the upgrade; at the token's exp the connection closes 3005."""
        import websockets  # Debian python3-websockets
        from websockets.exceptions import ConnectionClosed

        def raw_path(*channels, **params):
            return "/ws/raw?" + sse_path(*channels, **params).split("?", 1)[1]

        def refused(path, headers=()):
            conn = HttpConn(self.server.addr)
            req, _ = RawWS.handshake_request(path, headers=list(headers))
            conn.send(req)
            r = conn.read_response()
            conn.close()
            return r

        tok = conn_token("alice", info={"name": "Alice"})
        for path, status, text in [
                (raw_path("members:raw"), 403, "anonymous"),
                (raw_path("members:raw", token="garbage"), 401, "invalid token"),
                (raw_path("members:raw", token=conn_token("alice", ttl=-300)), 401, "token expired"),
                (raw_path("private:raw-a", token=tok), 403, "subscription token"),
                (raw_path("private:raw-a", token=tok, sub_token=[sub_token("bob", "private:raw-a")]), 403,
                 "another user")]:
            r = refused(path)
            self.assertEqual(r.status, status, (path, r.body))
            self.assertIn(text, r.json()["error"], path)
            if status == 401:
                self.assertIn("Bearer", r.header("WWW-Authenticate"))

        async def go():
            url = self.server.ws_url(raw_path("members:raw"))
            ws = await websockets.connect(url, extra_headers={"Authorization": "Bearer " + tok})
            n = await Native.open(self.server, token=conn_token("carol"))
            pres = await n.result("presence", {"channel": "members:raw"})
            self.assertEqual([(p["user"], p.get("info")) for p in pres["clients"].values()],
                             [("alice", {"name": "Alice"})])
            await ws.send('{"hi": 1}')  # members: publish = "authenticated"
            self.assertEqual(json.loads(await asyncio.wait_for(ws.recv(), 5 * SLOW)), {"hi": 1})
            await ws.close()
            await n.close()
            # a subscription token opens a subscribe = "token" channel
            url = self.server.ws_url(raw_path("private:raw-a", token=tok,
                                              sub_token=[sub_token("alice", "private:raw-a")]))
            ws = await websockets.connect(url)
            await ws.close()
            # expiry: closed with 3005 at exp (seconds, so within about 2 s)
            ws = await websockets.connect(self.server.ws_url(raw_path("news-raw-exp", token=conn_token("alice", ttl=1))))
            try:
                await asyncio.wait_for(ws.recv(), 5 * SLOW)
                self.fail("a message instead of the close")
            except ConnectionClosed:
                pass
            self.assertEqual((ws.close_code, ws.close_reason), (3005, "token expired"))
        run(go())

    def test_poll_token(self):
        conn = HttpConn(self.server.addr)
        r = conn.request("POST", "/poll/open?token=" + conn_token("alice", ttl=-300))
        self.assertEqual(r.status, 401)
        self.assertIn("token expired", r.json()["error"])
        r = conn.request("POST", "/poll/open?token=garbage")
        self.assertEqual(r.status, 401)
        r = conn.request("POST", "/poll/open", [("Authorization", "Bearer " + conn_token("alice"))])
        self.assertEqual(r.status, 200)
        sid = r.json()["session"]
        cmds = [{"id": 1, "connect": {}}, {"id": 2, "subscribe": {"channel": "members:poll"}}]
        r = conn.request("POST", f"/poll/send?session={sid}", None, "\n".join(map(json.dumps, cmds)).encode())
        self.assertEqual(r.status, 202)
        msgs = []
        deadline = time.monotonic() + 10 * SLOW
        while len(msgs) < 2 and time.monotonic() < deadline:
            r = conn.request("GET", f"/poll?session={sid}&cursor={len(msgs)}", timeout=10)
            msgs += r.json()["messages"]
        self.assertEqual(msgs[0]["result"]["user"], "alice")
        self.assertEqual(msgs[1]["result"]["channel"], "members:poll")
        conn.close()


class TestReload(unittest.TestCase):
    def write(self, keys):
        with open(self.config, "w") as f:
            f.write('[server]\napi_key = "testkey"\n[channels]\npublish = "anyone"\n[auth]\nrequire_exp = true\n' + keys)

    def key(self, name, secret_file):
        return f'[auth.key.{name}]\nalg = "HS256"\nsecret_file = "{secret_file}"\n'

    def test_sighup_rotation(self):
        d = tempfile.mkdtemp(prefix="herald-reload-")
        self.addCleanup(shutil.rmtree, d, True)
        self.config = f"{d}/herald.toml"
        for name, sec in (("old", OLD_SECRET), ("new", NEW_SECRET)):
            with open(f"{d}/{name}.secret", "w") as f:
                f.write(sec + "\n")
        self.write(self.key("old", f"{d}/old.secret"))
        srv = Herald("--config", self.config, workers=2)
        srv.start()
        try:
            now = int(time.time())
            old_tok = jwt({"sub": "u1", "exp": now + 600}, secret=OLD_SECRET, kid="old", aud=None)
            new_tok = jwt({"sub": "u2", "exp": now + 600}, secret=NEW_SECRET, kid="new", aud=None)

            async def phase1():
                live = await Native.open(srv, token=old_tok)
                await live.result("subscribe", {"channel": "rot"})
                c = await Native.open(srv, connect=False)
                await c.error("connect", {"token": new_tok}, code=101)
                return live

            async def scenario():
                live = await phase1()
                # rotate: the old key goes, the new one comes
                self.write(self.key("new", f"{d}/new.secret"))
                srv.signal(signal.SIGHUP)
                await wait_log(srv, "token keys reloaded")
                c = await Native.open(srv, connect=False)
                await c.error("connect", {"token": old_tok}, code=101)
                c2 = await Native.open(srv, token=new_tok)
                self.assertEqual(c2.connect_result["user"], "u2")
                # the live connection is untouched
                await c2.result("publish", {"channel": "rot", "data": "after-reload"})
                p = await live.pubs(1, channel="rot")
                self.assertEqual(p[0]["data"], "after-reload")
                # a broken key file: the new key set is refused, the current one stays
                self.write(self.key("new", f"{d}/new.secret") + '[auth.key.bad]\nalg = "RS256"\n'
                           f'public_key_file = "{d}/missing.pem"\n')
                srv.signal(signal.SIGHUP)
                await wait_log(srv, "not reloaded")
                self.assertIn("missing.pem", srv.output())
                c3 = await Native.open(srv, token=new_tok)
                self.assertEqual(c3.connect_result["user"], "u2")
                for x in (live, c, c2, c3):
                    await close_reader(x)
            run(scenario())
        finally:
            self.assertEqual(srv.stop(), 0)


async def wait_log(srv, text, timeout=5):
    deadline = time.monotonic() + timeout * SLOW
    while text not in srv.output():
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} not logged:\n{srv.output(20)}")
        await asyncio.sleep(0.05)


class TestCli(unittest.TestCase):
    def test_genconfig_boots_and_token_connects(self):
        d = tempfile.mkdtemp(prefix="herald-genconfig-")
        self.addCleanup(shutil.rmtree, d, True)
        r = run_herald("genconfig")
        self.assertEqual(r.returncode, 0, r.stderr)
        text = r.stdout.decode()
        self.assertIn("token_hmac_secret", text)
        self.assertNotEqual(text, run_herald("genconfig").stdout.decode(), "fresh secrets every time")
        path = f"{d}/herald.toml"
        with open(path, "w") as f:
            f.write(text)
        self.assertEqual(run_herald("check-config", path).returncode, 0)
        tok = run_herald("token", "--config", path, "--user", "alice", "--ttl", "1h",
                         "--channel", "private:alice-feed")
        self.assertEqual(tok.returncode, 0, tok.stderr)
        stok = run_herald("token", "--config", path, "--user", "alice", "--subscription-channel", "private:p")
        self.assertEqual(stok.returncode, 0, stok.stderr)
        srv = Herald("--config", path, add_listen=True, workers=1)
        srv.start()
        try:
            async def t():
                c = await Native.open(srv, token=tok.stdout.decode().strip())
                self.assertEqual(c.connect_result["user"], "alice")
                self.assertIn("private:alice-feed", c.connect_result["subs"])
                await c.error("subscribe", {"channel": "private:p"}, code=103)
                await c.result("subscribe", {"channel": "private:p", "token": stok.stdout.decode().strip()})
                await close_reader(c)
            run(t())
        finally:
            self.assertEqual(srv.stop(), 0)

    def test_token_usage_errors(self):
        r = run_herald("token", "--user", "a")
        self.assertEqual(r.returncode, 2)
        self.assertIn("no signing key", r.stderr.decode())
        r = run_herald("token", "--token-hmac-secret", SECRET)
        self.assertEqual(r.returncode, 2)
        self.assertIn("--user", r.stderr.decode())
        r = run_herald("token", "--token-hmac-secret", SECRET, "--user", "a", "--info", "[1]")
        self.assertEqual(r.returncode, 2)
        r = run_herald("token", "--token-hmac-secret", SECRET, "--user", "a", "--ttl", "0")
        self.assertEqual(r.returncode, 0)
        payload = json.loads(base64.urlsafe_b64decode(r.stdout.decode().split(".")[1] + "=="))
        self.assertNotIn("exp", payload)

    def test_bad_key_exits_2(self):
        r = run_herald("serve", "--listen", "127.0.0.1:0", "--auth.key.k.alg", "RS256",
                       "--auth.key.k.public-key-file", "/nonexistent.pem")
        self.assertEqual(r.returncode, 2)
        self.assertIn("auth.key.k.public_key_file", r.stderr.decode())
        r = run_herald("serve", "--listen", "127.0.0.1:0", "--token-hmac-secret", "short")
        self.assertEqual(r.returncode, 2)
        self.assertIn("32 bytes", r.stderr.decode())


if __name__ == "__main__":
    main()
