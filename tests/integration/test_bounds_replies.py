#!/usr/bin/env python3
"""Issue 12, item 1 and parts of item 8: what one native-protocol session can
make the server build or do (docs/security.md, "Replies and commands").

- One small frame of 100 `history` commands on a channel of 100 x 60 KB
  publications: the server builds at most channels.reply_budget of replies
  (peak RSS bounded, measured from /proc while attacking), the commands past
  it get error 111 with temporary: true, a history reply is one page of at
  most channels.max_reply_size bytes with "more": true, and a well-behaved
  client on the same worker keeps its /health round trips short. The same
  over /poll/send, six such frames from a client that does not read, and an
  /api/batch of history commands (429 past the budget).
- History pages: channels.history_max_limit publications at most, "more",
  continuing with since; the same page cap on /api/history.
- Token verification per connection (limits.token_verifications_per_connection):
  past the burst, refresh / subscription tokens get 111 without being looked at.
- A channel name longer than 1023 bytes leaves no ghost presence entry.
- join/leave pushes stop above channels.join_leave_max_subscribers (default 100,
  and a configured 5).
- An exact subscription plus a matching pattern: two pushes with the same
  channel and offset (documented, not deduplicated).
"""

import json
import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from herald_testlib import SLOW, HeraldTestCase, PeakSampler, Prober, RawWS, main, proc_rss_bytes  # noqa: E402
from herald_native import API_KEY, Api  # noqa: E402
from emu_client import Poller  # noqa: E402

MiB = 1 << 20
PUB_SIZE = 60_000
NPUBS = 100
BUDGET = 4 * MiB           # channels.reply_budget default
PAGE_BYTES = 1 * MiB       # channels.max_reply_size default
# Peak RSS growth allowed while attacking (the unbounded server: ~1.7 GB for one frame).
RSS_BOUND = 96 * MiB * (2 if SLOW > 1 else 1)
P99_BOUND = 0.25 * SLOW    # seconds, a /health round trip of the prober on the same worker


def native(server):
    ws = RawWS.connect(server.addr, "/ws", timeout=10.0)
    ws.send_text(json.dumps({"id": 1, "connect": {}}))
    rep = read_replies(ws, 1)[0]
    assert "result" in rep, rep
    return ws


def read_replies(ws, n, timeout=20.0):
    """The next n reply lines (pushes skipped)."""
    out = []
    deadline = time.monotonic() + timeout * SLOW
    while len(out) < n:
        left = deadline - time.monotonic()
        assert left > 0, f"only {len(out)} of {n} replies"
        _, payload = ws.recv_message(timeout=left / SLOW)
        for line in payload.decode().split("\n"):
            if line.strip():
                obj = json.loads(line)
                if "id" in obj:
                    out.append(obj)
    return out


def history_frame(first_id, channel, n=100, **params):
    return "\n".join(json.dumps({"id": first_id + i, "history": dict(params, channel=channel)}) for i in range(n))


def fill_channel(api, channel, n, size):
    for i in range(n):
        api.call("publish", {"channel": channel, "data": f"{i:06d}" + "x" * (size - 6)})


def check_history_replies(test, replies):
    """Each reply is a page within max_reply_size or error 111 temporary; returns (results, refusals)."""
    results = refusals = 0
    for rep in replies:
        if "error" in rep:
            test.assertEqual(rep["error"]["code"], 111, rep["error"])
            test.assertTrue(rep["error"]["temporary"], rep["error"])
            refusals += 1
            continue
        res = rep["result"]
        test.assertTrue(res["publications"], "a page holds at least one publication")
        test.assertTrue(res.get("more"), "100 x 60 KB does not fit one page: more must be true")
        test.assertLessEqual(len(json.dumps(res)), PAGE_BYTES + 65536)
        results += 1
    return results, refusals


class ReplyBudget(HeraldTestCase):
    server_workers = 1
    server_args = ("--api-key", API_KEY, "--channels.history-size", "200", "--channels.history-ttl", "1h")

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        api = Api(cls.server)
        fill_channel(api, "big", NPUBS, PUB_SIZE)
        api.close()

    def attack(self, send_and_read):
        time.sleep(0.2)
        base = proc_rss_bytes(self.server.proc.pid)
        with Prober(self.server.addr, pid=self.server.proc.pid) as probe, PeakSampler(self.server.proc.pid, interval=0.01) as peak:
            out = send_and_read()
            time.sleep(0.1)
        grew = peak.peak_rss - base
        sys.stderr.write(f"\n  peak RSS +{grew / MiB:.1f} MiB, prober {probe.describe()}\n")
        self.assertLess(grew, RSS_BOUND, f"peak RSS grew by {grew / MiB:.0f} MiB")
        self.assertEqual(probe.failures, 0)
        self.assertLess(probe.p99_less_wait(), P99_BOUND, probe.describe())
        return out

    def test_one_frame_of_100_history_commands(self):
        ws = native(self.server)

        def go():
            ws.send_text(history_frame(10, "big"))
            return read_replies(ws, 100)
        replies = self.attack(go)
        self.assertEqual([r["id"] for r in replies], list(range(10, 110)))
        results, refusals = check_history_replies(self, replies)
        # the budget holds a few pages; the rest are refused, to be retried
        self.assertGreaterEqual(results, 1)
        self.assertLessEqual(results, BUDGET // (PAGE_BYTES // 2))
        self.assertGreater(refusals, 0)
        # a refused command succeeds once the replies were read
        ws.send_text(json.dumps({"id": 500, "history": {"channel": "big", "limit": 2}}))
        rep = read_replies(ws, 1)[0]
        self.assertEqual(len(rep["result"]["publications"]), 2, rep)
        self.assertTrue(rep["result"]["more"])
        ws.close_socket()

    def test_six_frames_from_a_client_that_does_not_read(self):
        ws = native(self.server)

        def go():
            for k in range(6):
                ws.send_text(history_frame(1000 * (k + 1), "big"))
            time.sleep(1.0)  # nothing read meanwhile
            return read_replies(ws, 600, timeout=30)
        replies = self.attack(go)
        results, refusals = check_history_replies(self, replies)
        self.assertLessEqual(results, 6 * BUDGET // (PAGE_BYTES // 2))
        self.assertGreater(refusals, 400)
        ws.close_socket()

    def test_poll_send_frame_of_100_history_commands(self):
        p = Poller(self.server)
        p.open()
        p.command("connect")

        def go():
            p.send(*[{"id": 100 + i, "history": {"channel": "big"}} for i in range(100)])
            deadline = time.monotonic() + 20 * SLOW
            while len([m for m in p.lines.values() if m.get("id", 0) >= 100]) < 100:
                self.assertLess(time.monotonic(), deadline)
                p.poll(timeout=10)
            return [m for m in p.lines.values() if m.get("id", 0) >= 100]
        replies = self.attack(go)
        results, refusals = check_history_replies(self, replies)
        self.assertGreaterEqual(results, 1)
        self.assertGreater(refusals, 0)  # poll.max_queued_bytes / 2 = 2 MiB of replies at most
        p.close()

    def test_api_batch_of_history_commands(self):
        api = Api(self.server)

        def go():
            return api.call("batch", {"commands": [{"method": "history", "params": {"channel": "big"}}] * 50})
        replies = self.attack(go)["replies"]
        pages = [r["result"] for r in replies if "result" in r]
        refused = [r for r in replies if "error" in r]
        self.assertGreaterEqual(len(pages), 1)
        self.assertLessEqual(len(pages), BUDGET // (PAGE_BYTES // 2))
        for p in pages:
            self.assertTrue(p["more"])
            self.assertLessEqual(len(json.dumps(p)), PAGE_BYTES + 65536)
        self.assertEqual(len(pages) + len(refused), 50)
        self.assertEqual({r["status"] for r in refused}, {429})
        api.close()

    def test_pages_cover_the_whole_history_in_order(self):
        ws = native(self.server)
        seen, since, cid = [], None, 2000
        while True:
            params = {"channel": "big"}
            if since:
                params["since"] = since
            ws.send_text(json.dumps({"id": cid, "history": params}))
            res = read_replies(ws, 1)[0]["result"]
            cid += 1
            self.assertLessEqual(len(json.dumps(res)), PAGE_BYTES + 65536)
            seen += [p["offset"] for p in res["publications"]]
            if not res.get("more"):
                break
            since = {"offset": res["publications"][-1]["offset"], "epoch": res["epoch"]}
            self.assertLess(cid, 2050)
        self.assertEqual(seen, list(range(1, NPUBS + 1)))
        ws.close_socket()


class HistoryLimit(HeraldTestCase):
    server_args = ("--api-key", API_KEY, "--channels.history-max-limit", "30")

    def test_limit_cap_over_ws_and_api(self):
        api = Api(self.server)
        fill_channel(api, "small", 50, 10)
        ws = native(self.server)
        cases = [({}, list(range(1, 31)), True), ({"limit": 10}, list(range(1, 11)), True),
                 ({"limit": 100}, list(range(1, 31)), True),
                 ({"since": {"offset": 40}}, list(range(41, 51)), False),
                 ({"reverse": True}, list(range(50, 20, -1)), True)]
        for i, (params, want, more) in enumerate(cases):
            ws.send_text(json.dumps({"id": 10 + i, "history": dict(params, channel="small")}))
            res = read_replies(ws, 1)[0]["result"]
            self.assertEqual([p["offset"] for p in res["publications"]], want, params)
            self.assertEqual(res.get("more", False), more, params)
            res = api.call("history", dict(params, channel="small"))
            self.assertEqual([p["offset"] for p in res["publications"]], want, params)
            self.assertEqual(res.get("more", False), more, params)
        ws.close_socket()
        api.close()


class ReplySize(HeraldTestCase):
    server_args = ("--api-key", API_KEY, "--channels.max-reply-size", "4KiB")

    def test_pages_recovery_and_presence_within_max_reply_size(self):
        api = Api(self.server)
        fill_channel(api, "mid", 10, 1000)
        # history: pages of 3 publications of ~1 KB (4 KiB), over /ws and /api
        ws = native(self.server)
        ws.send_text(json.dumps({"id": 2, "history": {"channel": "mid"}}))
        res = read_replies(ws, 1)[0]["result"]
        self.assertEqual([p["offset"] for p in res["publications"]], [1, 2, 3])
        self.assertTrue(res["more"])
        res = api.call("history", {"channel": "mid", "since": {"offset": 3}})
        self.assertEqual([p["offset"] for p in res["publications"]], [4, 5, 6])
        self.assertTrue(res["more"])
        # a recovery larger than max_reply_size: recovered false, nothing replayed
        ws.send_text(json.dumps({"id": 3, "subscribe": {"channel": "mid", "recover": True, "epoch": res["epoch"],
                                                         "offset": 1}}))
        res = read_replies(ws, 1)[0]["result"]
        self.assertFalse(res["recovered"])
        self.assertEqual(res["publications"], [])
        ws.send_text(json.dumps({"id": 4, "subscribe": {"channel": "mid2", "recover": True, "offset": 0}}))
        self.assertTrue(read_replies(ws, 1)[0]["result"]["recovered"])  # a small one still recovers
        # a presence list larger than max_reply_size: 106, presence_stats still answers
        others = [native(self.server) for _ in range(40)]
        for o in others:
            o.send_text(json.dumps({"id": 2, "subscribe": {"channel": "crowd"}}))
            read_replies(o, 1)
        ws.send_text(json.dumps({"id": 5, "presence": {"channel": "crowd"}}) + "\n" +
                     json.dumps({"id": 6, "presence_stats": {"channel": "crowd"}}))
        err, stats = read_replies(ws, 2)
        self.assertEqual(err["error"]["code"], 106, err)
        self.assertFalse(err["error"]["temporary"])
        self.assertEqual(stats["result"]["num_clients"], 40)
        for o in others:
            o.close_socket()
        ws.close_socket()
        api.close()


class TokenVerificationRate(HeraldTestCase):
    # the defaults: 20 per second after a burst of 200
    server_args = ("--api-key", API_KEY, "--auth.token-hmac-secret", "s3cret-s3cret-s3cret-s3cret-s3cret",
                   "--limits.auth-failures-per-ip", "0")

    def test_forged_tokens_are_rate_limited(self):
        ws = native(self.server)
        forged = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
        codes = []
        t0 = time.monotonic()
        for k in range(3):
            ws.send_text("\n".join(json.dumps({"id": 100 * (k + 1) + i, "refresh": {"token": forged}})
                                   for i in range(100)))
            codes += [r["error"]["code"] for r in read_replies(ws, 100)]
        ws.send_text("\n".join(json.dumps({"id": 900 + i, "subscribe": {"channel": f"c{i}", "token": forged}})
                               for i in range(20)))
        sub = read_replies(ws, 20)
        refused = [r for r in sub if r["error"]["code"] == 111]
        self.assertEqual(len(refused), 20, sub[:3])
        self.assertTrue(refused[0]["error"]["temporary"])
        self.assertIn("retry in", refused[0]["error"]["detail"])
        # the burst is verified (101 each), the rest refused unread
        self.assertLessEqual(codes.count(101), 200 + 20 * (time.monotonic() - t0) + 1)
        self.assertGreaterEqual(codes.count(111), 300 - 200 - 20 * (time.monotonic() - t0) - 1)
        # the connection stays usable
        ws.send_text(json.dumps({"id": 999, "ping": {}}))
        self.assertIn("result", read_replies(ws, 1)[0])
        ws.close_socket()


class LongChannelNames(HeraldTestCase):
    server_args = ("--api-key", API_KEY, "--channels.max-channel-length", "3000")

    def test_no_ghost_presence_after_leaving(self):
        api = Api(self.server)
        for name in ("p" * 1500, "q" * 3000):
            ws = native(self.server)
            ws.send_text(json.dumps({"id": 2, "subscribe": {"channel": name}}))
            self.assertIn("result", read_replies(ws, 1)[0])
            self.assertEqual(api.call("presence_stats", {"channel": name})["num_clients"], 1)
            ws.send_text(json.dumps({"id": 3, "unsubscribe": {"channel": name}}))
            self.assertIn("result", read_replies(ws, 1)[0])
            self.assertEqual(api.call("presence_stats", {"channel": name})["num_clients"], 0, len(name))
            ws.close_socket()
        api.close()


class ExactAndPattern(HeraldTestCase):
    server_args = ("--api-key", API_KEY)

    def test_one_push_per_matching_subscription(self):
        """docs/protocol.md: not deduplicated (that would cost a check per delivery);
        both copies carry the same channel and offset, so a client can drop one."""
        ws = native(self.server)
        ws.send_text(json.dumps({"id": 2, "subscribe": {"channel": "prices.btc"}}) + "\n" +
                     json.dumps({"id": 3, "subscribe": {"channel": "prices.*"}}))
        read_replies(ws, 2)
        off = Api(self.server).call("publish", {"channel": "prices.btc", "data": 1})["offset"]
        pubs = [p["pub"] for p in pushes_until_pong(ws, wait_for=2) if "pub" in p]
        self.assertEqual([(p["channel"], p["offset"]) for p in pubs], [("prices.btc", off)] * 2)
        ws.close_socket()


class JoinLeaveDefault(HeraldTestCase):
    server_args = ("--channels.join-leave", "true")

    def test_default_cap_of_100_subscribers(self):
        first = native(self.server)
        first.send_text(json.dumps({"id": 2, "subscribe": {"channel": "room"}}))
        read_replies(first, 1)
        others = []
        for i in range(103):
            ws = native(self.server)
            ws.send_text(json.dumps({"id": 2, "subscribe": {"channel": "room"}}))
            read_replies(ws, 1)
            others.append(ws)
        for ws in reversed(others):
            ws.send_text(json.dumps({"id": 3, "unsubscribe": {"channel": "room"}}))
            read_replies(ws, 1)
            ws.close_socket()
        pushes = pushes_until_pong(first)
        self.assertEqual(len([p for p in pushes if "join" in p]), 100)
        self.assertEqual(len([p for p in pushes if "leave" in p]), 99)
        first.close_socket()


def pushes_until_pong(ws, wait_for=0):
    """The pushes that arrive before the reply to a ping sent now (and at
    least wait_for of them)."""
    pushes = []
    while len(pushes) < wait_for:
        _, payload = ws.recv_message(timeout=10)
        pushes += [json.loads(x) for x in payload.decode().split("\n") if x.strip()]
    ws.send_text(json.dumps({"id": 99, "ping": {}}))
    while True:
        _, payload = ws.recv_message(timeout=10)
        lines = [json.loads(x) for x in payload.decode().split("\n") if x.strip()]
        pushes += [x for x in lines if "id" not in x]
        if any(x.get("id") == 99 for x in lines):
            return pushes


class JoinLeaveCap(HeraldTestCase):
    server_args = ("--channels.join-leave", "true", "--channels.join-leave-max-subscribers", "5")

    def test_no_join_pushes_above_the_cap(self):
        first = native(self.server)
        first.send_text(json.dumps({"id": 2, "subscribe": {"channel": "room"}}))
        read_replies(first, 1)
        others = []
        for i in range(7):
            ws = native(self.server)
            ws.send_text(json.dumps({"id": 2, "subscribe": {"channel": "room"}}))
            read_replies(ws, 1)
            others.append(ws)
        for ws in reversed(others):  # one at a time, so each leave sees a known count
            ws.send_text(json.dumps({"id": 3, "unsubscribe": {"channel": "room"}}))
            read_replies(ws, 1)
            ws.close_socket()
        pushes = pushes_until_pong(first)
        joins = [p for p in pushes if "join" in p]
        leaves = [p for p in pushes if "leave" in p]
        # subscribers 1..5: joins up to the 5th (the first's own join too), leaves from 5 down to 1
        self.assertEqual(len(joins), 5, pushes)
        self.assertEqual(len(leaves), 4, pushes)
        first.close_socket()


if __name__ == "__main__":
    main()
