#!/usr/bin/env python3
"""The admin UI's server side (docs/operations.md "Admin UI", docs/security.md)
against the real herald binary: its embedded files and their headers, the
login (wrong password refused, the auth-failure ban bites), the session
cookie's attributes, CSRF (no header, a wrong one, another Origin: 403),
logout, the actions running the server API's methods, the live statistics
on $admin:stats received over the native protocol with the admin credential
(connections rise when clients connect), and the reserved namespace: a
client that is not admin cannot subscribe to $admin:stats (native, SSE, a
JWT claiming the admin user id) and nobody can publish there (native,
server API, admin actions). The UI itself in a browser is
test_admin_browser.mjs.
"""

import asyncio
import base64
import hashlib
import hmac
import json
import os
import re
import sys
import time
import unittest
import urllib.parse

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from herald_testlib import SLOW, Herald, HeraldTestCase, HttpConn, main  # noqa: E402
from herald_native import API_KEY, Api, Native, run  # noqa: E402
from test_sse import SSE  # noqa: E402

PASSWORD = "correct horse battery staple"
SECRET = "admin-test-secret-0123456789abcdefghijklmnop"
STATS = "$admin:stats"


def jwt(claims):
    def b64(b):
        return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
    signing = b64(b'{"alg":"HS256","typ":"JWT"}') + "." + b64(json.dumps(claims).encode())
    return signing + "." + b64(hmac.new(SECRET.encode(), signing.encode(), hashlib.sha256).digest())


def user_token(user):
    return jwt({"sub": user, "exp": int(time.time()) + 3600})



def token_refused(t, server, tok):
    """A connect with tok (an ended admin credential) is answered 101."""
    async def go():
        c = await Native.open(server, connect=False)
        err = await c.error("connect", {"token": tok})
        t.assertEqual(err["code"], 101)
        await c.ws.close()
    run(go())

class AdminClient:
    """A browser's view of the admin API: the cookie jar and the CSRF token."""

    def __init__(self, server, conn=None):
        self.server = server
        self.host = "%s:%d" % server.addr
        self.conn = conn          # a kept-alive connection, or None: one per request
        self.cookie = None
        self.csrf = None

    def post(self, name, body=None, headers=None, cookie=True, csrf=True):
        h = {"Content-Type": "application/json", "Host": self.host}
        if cookie and self.cookie:
            h["Cookie"] = self.cookie
        if csrf and self.csrf:
            h["X-Herald-CSRF"] = self.csrf
        h.update(headers or {})
        body = json.dumps(body if body is not None else {}).encode()
        if self.conn:
            return self.conn.request("POST", "/admin/api/" + name, headers=list(h.items()), body=body, host=False)
        with HttpConn(self.server.addr, timeout=10 * SLOW) as c:
            return c.request("POST", "/admin/api/" + name, headers=list(h.items()), body=body, host=False)

    def login(self, password=PASSWORD, **kw):
        r = self.post("login", {"password": password}, cookie=False, csrf=False, **kw)
        if r.status == 200:
            self.cookie = r.header("Set-Cookie").split(";")[0]
            self.csrf = r.json()["csrf"]
        return r

    def token(self):
        r = self.post("token")
        assert r.status == 200, (r.status, r.body)
        return r.json()


def check_error(test, r, status, words=None):
    test.assertEqual(r.status, status, r.body)
    body = r.json()
    test.assertEqual(body["status"], status)
    if words:
        test.assertIn(words, body["error"])


class AdminOff(HeraldTestCase):
    """admin.enabled false (the default): nothing of the admin UI answers."""

    def test_admin_paths_answer_404_json(self):
        with HttpConn(self.server.addr) as c:
            for method, path in (("GET", "/admin/"), ("GET", "/admin"), ("POST", "/admin/api/login")):
                r = c.request(method, path, body=b'{"password":""}' if method == "POST" else b"")
                check_error(self, r, 404, "admin.enabled")
        self.assertNotIn("admin UI", self.server.output())


class AdminOn(HeraldTestCase):
    server_args = ("--admin", "--admin.password", PASSWORD, "--admin.stats-interval", "200ms",
                   "--api-key", API_KEY, "--token-hmac-secret", SECRET, "--channels.history-size", "10",
                   "--channels.presence", "true", "--channels.publish", "anyone")

    def test_files_are_served_with_strict_headers(self):
        with HttpConn(self.server.addr) as c:
            r = c.request("GET", "/admin")
            self.assertEqual(r.status, 301)
            self.assertEqual(r.header("Location"), "/admin/")
            for path, ctype, needle in (("/admin/", "text/html", b"login-form"),
                                        ("/admin/admin.js", "text/javascript", b"X-Herald-CSRF"),
                                        ("/admin/admin.css", "text/css", b"grid")):
                r = c.request("GET", path)
                self.assertEqual(r.status, 200, path)
                self.assertTrue(r.header("Content-Type").startswith(ctype), r.header("Content-Type"))
                self.assertIn(needle, r.body)
                csp = r.header("Content-Security-Policy")
                self.assertIn("script-src 'self'", csp)
                self.assertNotIn("unsafe-inline", csp)
                self.assertIn("frame-ancestors 'none'", csp)
                self.assertEqual(r.header("X-Frame-Options"), "DENY")
                self.assertEqual(r.header("X-Content-Type-Options"), "nosniff")
                self.assertTrue(r.header("Cache-Control"))
            # no inline script in the page: every <script> has a src
            html = c.request("GET", "/admin/").body.decode()
            for tag in re.findall(r"<script[^>]*>", html):
                self.assertIn("src=", tag)
            check_error(self, c.request("GET", "/admin/nope.js"), 404)
            check_error(self, c.request("GET", "/admin/api/login"), 405)

    def test_login_cookie_and_csrf(self):
        a = AdminClient(self.server)
        check_error(self, a.login("wrong"), 401, "wrong password")
        self.assertIsNone(a.cookie)
        r = a.login()
        self.assertEqual(r.status, 200, r.body)
        attrs = [x.strip() for x in r.header("Set-Cookie").split(";")]
        self.assertRegex(attrs[0], r"^herald_admin=[0-9a-f]{64}$")  # 256 bits
        for want in ("Path=/admin", "HttpOnly", "SameSite=Strict"):
            self.assertIn(want, attrs)
        self.assertNotIn("Secure", attrs)  # plain HTTP here
        self.assertRegex(a.csrf, r"^[0-9a-f]{64}$")
        self.assertEqual(a.post("info").status, 200)
        # the cookie without the header, with a wrong one, or the header without the cookie
        check_error(self, a.post("info", csrf=False), 403, "X-Herald-CSRF")
        check_error(self, a.post("info", headers={"X-Herald-CSRF": "0" * 64}), 403, "X-Herald-CSRF")
        check_error(self, a.post("publish", {"channel": "x", "data": 1}, cookie=False), 403, "not logged in")
        # a cross-origin page's request (the browser sends its Origin) with everything else right
        check_error(self, a.post("publish", {"channel": "x", "data": 1},
                                 headers={"Origin": "http://evil.example"}), 403, "cross-origin")
        check_error(self, a.login(headers={"Origin": "http://evil.example"}), 403, "cross-origin")
        ok = a.post("info", headers={"Origin": "http://" + a.host})
        self.assertEqual(ok.status, 200, ok.body)
        # GET is not an action; unknown and non-admin methods are 404
        check_error(self, a.post("batch"), 404)
        check_error(self, a.post("history_remove", {"channel": "x"}), 404)
        # logout ends the session and its connection credential
        tok = a.token()["token"]
        r = a.post("logout")
        self.assertEqual(r.status, 200)
        self.assertIn("Max-Age=0", r.header("Set-Cookie"))
        check_error(self, a.post("info"), 403, "not logged in")
        token_refused(self, self.server, tok)

    def test_actions_publish_lookup_and_disconnect(self):
        a = AdminClient(self.server)
        self.assertEqual(a.login().status, 200)
        ch = f"adm:{os.getpid()}-act"

        async def go():
            alice = await Native.open(self.server, token=user_token("alice"))
            await alice.result("subscribe", {"channel": ch})
            r = a.post("publish", {"channel": ch, "data": {"text": "from admin"}})
            self.assertEqual(r.status, 200, r.body)
            pub = await alice.push()
            self.assertEqual(pub["pub"]["data"], {"text": "from admin"})
            r = a.post("channels", {"pattern": ch})
            self.assertEqual(r.json()["channels"][ch]["subscribers"], 1)
            r = a.post("presence", {"channel": ch})
            self.assertEqual([c["user"] for c in r.json()["clients"].values()], ["alice"])
            r = a.post("history", {"channel": ch, "limit": 10})
            self.assertEqual([p["data"] for p in r.json()["publications"]], [{"text": "from admin"}])
            r = a.post("disconnect", {"user": "alice", "reason": "bye"})
            self.assertEqual(r.status, 200, r.body)
            await asyncio.wait_for(alice.closed.wait(), 5 * SLOW)
            self.assertEqual(alice.ws.close_code, 3000)
        run(go())

    def test_live_stats_over_the_native_protocol(self):
        a = AdminClient(self.server)
        self.assertEqual(a.login().status, 200)
        tok = a.token()
        self.assertEqual(tok["channel"], STATS)

        async def snapshot(c):
            while True:
                p = await c.push(timeout=5 * SLOW)
                if "pub" in p and p["pub"]["channel"] == STATS:
                    return p["pub"]["data"]

        async def go():
            c = await Native.open(self.server, token=tok["token"])
            await c.result("subscribe", {"channel": STATS})
            s = await snapshot(c)
            for key in ("node", "connections", "subscriptions", "deliveries", "messages_out", "bytes_out", "uptime_ms",
                        "interval_ms", "engine", "top"):
                self.assertIn(key, s)
            self.assertEqual(s["engine"]["name"], "memory")
            self.assertEqual(s["interval_ms"], 200)
            before = s["connections"]
            ch = f"adm:{os.getpid()}-busy"
            others = [await Native.open(self.server) for _ in range(5)]
            for o in others:
                await o.result("subscribe", {"channel": ch})
            deadline = time.monotonic() + 5 * SLOW
            while True:
                s = await snapshot(c)
                if s["connections"] >= before + 5 and any(t["channel"] == ch for t in s["top"]):
                    break
                self.assertLess(time.monotonic(), deadline, s)
            self.assertEqual([t["subscribers"] for t in s["top"] if t["channel"] == ch], [5])
            for o in others:
                await o.ws.close()
            await c.ws.close()
        run(go())

    def test_live_stats_over_sse_with_the_credential(self):
        a = AdminClient(self.server)
        self.assertEqual(a.login().status, 200)
        tok = a.token()["token"]
        s = SSE(self.server, "/sse?channel=" + urllib.parse.quote(STATS, safe="") + "&token=" + tok)
        try:
            self.assertEqual(s.status, 200, s.response.body)
            deadline = time.monotonic() + 5 * SLOW
            while True:
                ev = s.next()
                if ev.type in ("", "message") and '"node"' in ev.data:
                    break
                self.assertLess(time.monotonic(), deadline)
            snap = json.loads(ev.data)
            self.assertIn("connections", snap)
        finally:
            s.conn.close()

    def test_reserved_namespace(self):
        async def go():
            anon = await Native.open(self.server)
            err = await anon.error("subscribe", {"channel": STATS})
            self.assertEqual(err["code"], 103)
            err = await anon.error("subscribe", {"channel": "$admin:*"})
            self.assertEqual(err["code"], 103)
            err = await anon.error("publish", {"channel": STATS, "data": {"forged": True}})
            self.assertEqual(err["code"], 103)
            # a JWT may not claim the admin user id
            c = await Native.open(self.server, connect=False)
            err = await c.error("connect", {"token": user_token("$admin")})
            self.assertEqual(err["code"], 101)
            # nor a Pusher app's scoped user (docs/pusher.md "Users are per app")
            cp = await Native.open(self.server, connect=False)
            err = await cp.error("connect", {"token": user_token("$pusher-4321:gina")})
            self.assertEqual(err["code"], 101)
            await cp.ws.close()
            # a forged credential
            c2 = await Native.open(self.server, connect=False)
            err = await c2.error("connect", {"token": "hadm." + "0" * 64})
            self.assertEqual(err["code"], 101)
            # even the admin cannot publish there
            a = AdminClient(self.server)
            a.login()
            admin = await Native.open(self.server, token=a.token()["token"])
            err = await admin.error("publish", {"channel": STATS, "data": 1})
            self.assertEqual(err["code"], 103)
            for x in (anon, c, c2, admin):
                await x.ws.close()
        run(go())
        s = SSE(self.server, "/sse?channel=" + urllib.parse.quote(STATS, safe=""))
        self.assertEqual(s.status, 403, s.response.body)
        self.assertIn("reserved for the admin UI", s.response.body.decode())
        s.conn.close()
        api = Api(self.server)
        r = api.raw("/api/publish", json.dumps({"channel": STATS, "data": 1}).encode())
        self.assertEqual(r.status, 403, r.body)
        api.close()
        a = AdminClient(self.server)
        a.login()
        check_error(self, a.post("publish", {"channel": STATS, "data": 1}), 403, "$admin")


class AdminLoginBan(HeraldTestCase):
    """limits.auth_failures_per_ip: failed logins ban the address, the right
    password included, on a connection admitted before the ban."""
    server_args = ("--admin", "--admin.password", PASSWORD, "--limits.auth-failures-per-ip", "3",
                   "--limits.auth-failure-ban", "60s")

    def test_failed_logins_are_rate_limited(self):
        with HttpConn(self.server.addr, timeout=10 * SLOW) as kept:
            a = AdminClient(self.server, conn=kept)
            for _ in range(3):
                check_error(self, a.login("guess"), 401)
            # the connection admitted before the ban: the login itself refuses
            r = a.login()
            check_error(self, r, 429, "too many failed logins")
            self.assertTrue(r.header("Retry-After"))
        # a new connection from the address: refused at accept, as after rejected tokens
        r = AdminClient(self.server).login()
        self.assertEqual(r.status, 429, r.body)
        self.assertIn("failed the admin login too often", self.server.output())


class AdminMaxSessions(HeraldTestCase):
    """admin.max_sessions: a login past it ends the oldest session."""
    server_args = ("--admin", "--admin.password", PASSWORD, "--admin.max-sessions", "2")

    def test_a_login_past_the_maximum_ends_the_oldest(self):
        first, second, third = (AdminClient(self.server) for _ in range(3))
        for a in (first, second):
            self.assertEqual(a.login().status, 200)
        self.assertEqual(first.post("info").status, 200)
        self.assertEqual(third.login().status, 200)
        check_error(self, first.post("info"), 403, "not logged in")
        for a in (second, third):
            self.assertEqual(a.post("info").status, 200)


class AdminSessionTtl(HeraldTestCase):
    """admin.session_ttl: the cookie and the credential stop working after it."""
    server_args = ("--admin", "--admin.password", PASSWORD, "--admin.session-ttl", "1s")

    def test_a_session_expires(self):
        a = AdminClient(self.server)
        self.assertEqual(a.login().status, 200)
        tok = a.token()["token"]
        time.sleep(1.3)
        check_error(self, a.post("info"), 403, "expired")
        token_refused(self, self.server, tok)


class AdminGeneratedPassword(HeraldTestCase):
    server_args = ("--admin",)

    def test_password_is_generated_and_printed(self):
        pat = r"admin UI: (http://\S+/admin/) \(password ([0-9a-f]{24}), generated"
        deadline = time.monotonic() + 5 * SLOW
        while not re.search(pat, self.server.output()) and time.monotonic() < deadline:
            time.sleep(0.05)
        m = re.search(pat, self.server.output())
        self.assertTrue(m, self.server.output())
        self.assertEqual(AdminClient(self.server).login(m.group(2)).status, 200)
        self.assertEqual(AdminClient(self.server).login("").status, 401)


if __name__ == "__main__":
    main()
