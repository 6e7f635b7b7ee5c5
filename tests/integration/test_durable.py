#!/usr/bin/env python3
"""test_durable - the durable log (--data-dir, docs/durability.md): what a
user sees across restarts, crashes, damaged files, retention and a full disk.

Each test starts herald on its own temporary directory: publishes over the
server API, kills it (SIGKILL or SIGTERM), starts it again on the same
directory and checks history, offsets and epochs, and that a native client
recovers (or is told it cannot) across the restart.
"""

import asyncio
import glob
import os
import resource
import shutil
import signal
import sys
import tempfile
import threading
import time
import unittest
import urllib.request
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from herald_testlib import SLOW, Herald, main, run_herald  # noqa: E402
from herald_native import API_KEY, Api, Native, check_error, run  # noqa: E402

BASE = ("--api-key", API_KEY, "--channels.publish", "anyone")


class DataDirCase(unittest.TestCase):
    """A temporary --data-dir per test; start() runs herald on it with
    base_args (test_durable_crash.py uses it too)."""
    base_args = BASE

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="herald-durable-")
        self.servers = []

    def tearDown(self):
        for s in self.servers:
            s.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def start(self, *args):
        srv = Herald(*self.base_args, "--data-dir", self.dir, *args)
        self.servers.append(srv)
        srv.start()
        return srv


class DurableTest(DataDirCase):

    def segments(self):
        return sorted(glob.glob(os.path.join(self.dir, "*.log")))

    def history(self, srv, ch, **q):
        api = Api(srv)
        try:
            return api.call("history", {"channel": ch, **q})
        finally:
            api.close()

    def publish(self, srv, ch, datas, **extra):
        api = Api(srv)
        try:
            return [api.publish(ch, d, **extra) for d in datas]
        finally:
            api.close()

    def restart_keeps_everything(self, sig):
        srv = self.start()
        res = self.publish(srv, "news", [{"n": i} for i in range(1, 51)])
        epoch = res[0]["epoch"]
        self.assertEqual([r["offset"] for r in res], list(range(1, 51)))
        if sig == signal.SIGKILL:
            srv.kill()
        else:
            self.assertEqual(srv.stop(sig), 0)
        srv = self.start()
        h = self.history(srv, "news")
        self.assertEqual((h["epoch"], h["offset"]), (epoch, 50))
        self.assertEqual([p["data"] for p in h["publications"]], [{"n": i} for i in range(1, 51)])

        async def recover():
            c = await Native.open(srv)
            r = await c.result("subscribe", {"channel": "news", "recover": True, "epoch": epoch, "offset": 40})
            self.assertIs(r.get("recovered"), True, r)
            self.assertEqual([p["offset"] for p in r["publications"]], list(range(41, 51)))
            await c.close()
        run(recover())
        self.assertEqual(self.publish(srv, "news", [{"n": 51}])[0], {"offset": 51, "epoch": epoch})

    def test_kill9_restart_keeps_history_offsets_and_epoch(self):
        self.restart_keeps_everything(signal.SIGKILL)

    def test_sigterm_restart_keeps_history_offsets_and_epoch(self):
        self.restart_keeps_everything(signal.SIGTERM)

    def test_torn_last_record_is_dropped_and_epoch_kept(self):
        srv = self.start()
        res = self.publish(srv, "torn", [{"n": i} for i in range(1, 6)])
        srv.kill()
        seg = [s for s in self.segments() if os.path.getsize(s)][-1]
        os.truncate(seg, os.path.getsize(seg) - 3)  # the last record loses its tail
        srv = self.start()
        h = self.history(srv, "torn")
        self.assertEqual((h["epoch"], h["offset"]), (res[0]["epoch"], 4))
        self.assertEqual(len(h["publications"]), 4)
        self.assertIn("torn record", srv.output())
        self.assertEqual(self.publish(srv, "torn", [{"n": 5}])[0]["offset"], 5)

    def test_damaged_record_gives_affected_channels_a_new_epoch(self):
        srv = self.start()
        before = self.publish(srv, "before", [{"n": 1}])[0]
        res = self.publish(srv, "hit", [{"mark": f"m{i:03d}"} for i in range(1, 11)])
        srv.kill()
        seg = [s for s in self.segments() if os.path.getsize(s)][-1]
        with open(seg, "r+b") as f:
            data = f.read()
            at = data.index(b"m005")
            f.seek(at)
            f.write(b"X")
        srv = self.start()
        self.assertIn("damaged record", srv.output())
        h = self.history(srv, "hit")
        self.assertNotEqual(h["epoch"], res[0]["epoch"])
        self.assertEqual(self.history(srv, "before")["epoch"], before["epoch"], "a channel before the damage keeps it")

        async def recover():
            c = await Native.open(srv)
            r = await c.result("subscribe", {"channel": "hit", "recover": True, "epoch": res[0]["epoch"],
                                             "offset": 2})
            self.assertIs(r.get("recovered"), False, r)
            await c.close()
        run(recover())
        new_epoch = h["epoch"]
        srv.kill()
        srv = self.start()  # the damage was handled once: the new epoch stays
        self.assertEqual(self.history(srv, "hit")["epoch"], new_epoch)

    def restart_after_retention(self, srv, *args):
        """Restart (the active segment is closed), let retention run, restart."""
        srv.kill()
        srv = self.start(*args)
        time.sleep(2.5 * SLOW)  # retention runs every second
        srv.kill()
        return self.start(*args)

    def test_retention_never_brings_back_removed_history(self):
        """history_remove's record outlives retention while an older segment
        (kept by another channel) has the removed publications."""
        hist = ("--channels.history-size", "100")
        srv = self.start(*hist)
        self.publish(srv, "keep", [{"n": 1}])
        self.publish(srv, "rm", [{"n": i} for i in range(1, 4)])
        srv.kill()
        srv = self.start(*hist)
        api = Api(srv)
        api.call("history_remove", {"channel": "rm"})
        api.close()
        srv = self.restart_after_retention(srv, *hist)
        h = self.history(srv, "rm")
        self.assertEqual((h["offset"], h["publications"]), (3, []), "removed publications stay removed")

    def test_retention_never_brings_back_an_older_epoch(self):
        """The segment holding a damaged channel's new epoch (an EPOCH record,
        no publication) outlives retention while an older segment still has
        the channel's old-epoch records: a restart gives the new epoch and
        offset, not the old ones (a client of the old epoch would recover
        across the lost publications)."""
        hist = ("--channels.history-size", "100")
        srv = self.start(*hist)
        keep = self.publish(srv, "keep", [{"n": 1}])[0]  # keeps segment 0 in history
        e1 = self.publish(srv, "hit", [{"mark": f"m{i:03d}"} for i in range(1, 5)])[0]["epoch"]
        srv.kill()
        srv = self.start(*hist)  # a new segment for offsets 5..10
        self.publish(srv, "hit", [{"mark": f"m{i:03d}"} for i in range(5, 11)])
        srv.kill()
        damaged = [s for s in self.segments() if b"m007" in Path(s).read_bytes()][0]
        with open(damaged, "r+b") as f:
            f.seek(f.read().index(b"m007"))
            f.write(b"X")
        srv = self.start(*hist)  # hit gets a new epoch, written into a new segment
        h = self.history(srv, "hit")
        e2 = h["epoch"]
        self.assertNotEqual(e2, e1)
        self.assertEqual(h["offset"], 10)
        deadline = time.monotonic() + 5 * SLOW  # the damaged segment leaves (nothing holds it)
        while os.path.exists(damaged) and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertFalse(os.path.exists(damaged))
        srv = self.restart_after_retention(srv, *hist)
        h = self.history(srv, "hit")
        self.assertEqual((h["epoch"], h["offset"]), (e2, 10), "never the old epoch (nor its older offset)")
        self.assertEqual(self.publish(srv, "hit", [{"n": 11}])[0], {"offset": 11, "epoch": e2})
        self.assertEqual(self.history(srv, "keep")["epoch"], keep["epoch"])

    def test_retention_deletes_segments(self):
        srv = self.start("--engine.segment-bytes", "4KiB", "--channels.history-size", "5")
        self.publish(srv, "ret", [{"pad": "x" * 200, "n": i} for i in range(200)])
        deadline = time.monotonic() + 5 * SLOW
        while len(self.segments()) > 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertLessEqual(len(self.segments()), 3, self.segments())
        h = self.history(srv, "ret")
        self.assertEqual([p["data"]["n"] for p in h["publications"]], list(range(195, 200)))

    def test_history_ttl_deletes_expired_segments_and_a_restart_keeps_the_position(self):
        srv = self.start("--engine.segment-bytes", "4KiB", "--channels.history-ttl", "1s",
                         "--channels.history-size", "1000")
        res = self.publish(srv, "ttl", [{"pad": "t" * 200, "n": i} for i in range(100)])
        epoch = res[0]["epoch"]
        self.assertGreaterEqual(len(self.segments()), 5, self.segments())
        # nobody reads the channel: expiry alone must free the closed segments
        deadline = time.monotonic() + 1 + 4 * SLOW
        while len(self.segments()) > 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        segs = self.segments()
        self.assertEqual(len(segs), 1, "closed segments whose records all expired are deleted")
        self.assertLessEqual(os.path.getsize(segs[0]), 4096)
        h = self.history(srv, "ttl")
        self.assertEqual((h["epoch"], h["offset"], h["publications"]), (epoch, 100, []))
        srv.kill()
        srv = self.start("--engine.segment-bytes", "4KiB", "--channels.history-ttl", "1s")
        h = self.history(srv, "ttl")
        self.assertEqual((h["epoch"], h["offset"], h["publications"]), (epoch, 100, []),
                         "the newest segment keeps the position across a restart")
        self.assertEqual(self.publish(srv, "ttl", [{"n": 100}])[0], {"offset": 101, "epoch": epoch})

    def test_max_disk_bytes_shortens_history(self):
        srv = self.start("--engine.segment-bytes", "4KiB", "--engine.max-disk-bytes", "16KiB",
                         "--channels.history-size", "1000")
        res = self.publish(srv, "big", [{"pad": "x" * 200, "n": i} for i in range(300)])
        api = Api(srv)
        info = api.call("info", {})["nodes"][0]
        api.close()
        self.assertLessEqual(info["disk_bytes"], 16 * 1024 + 4096, info)
        with urllib.request.urlopen(srv.url("/metrics"), timeout=5 * SLOW) as r:
            gauge = [ln for ln in r.read().decode().splitlines() if ln.startswith("herald_disk_bytes ")]
        self.assertEqual(len(gauge), 1, gauge)
        self.assertGreater(float(gauge[0].split()[1]), 0)
        self.assertLessEqual(float(gauge[0].split()[1]), 16 * 1024 + 4096)
        h = self.history(srv, "big")
        self.assertLess(len(h["publications"]), 300)
        self.assertEqual(h["publications"][-1]["data"]["n"], 299)
        self.assertGreater(h["publications"][0]["offset"], 1)

        async def recover():
            c = await Native.open(srv)
            r = await c.result("subscribe", {"channel": "big", "recover": True, "epoch": res[0]["epoch"],
                                             "offset": 1})
            self.assertIs(r.get("recovered"), False, {k: v for k, v in r.items() if k != "publications"})
            await c.close()
        run(recover())

    def test_write_failure_answers_507_and_117_then_resumes(self):
        srv = self.start("--engine.segment-bytes", "1MiB")
        self.assertEqual(self.publish(srv, "full", [{"n": 1}])[0]["offset"], 1)
        pid = srv.proc.pid
        hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)[1]
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (1, hard))  # every write past byte 1 fails (EFBIG)
        api = Api(srv)
        api.call("publish", {"channel": "full", "data": {"n": 2}}, expect=507)
        api.call("publish", {"channel": "full", "data": {"n": 3}}, expect=507)

        async def native():
            c = await Native.open(srv)
            err = await c.error("publish", {"channel": "full", "data": {"n": 4}})
            check_error(err, 117)
            await c.close()
        run(native())
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (hard, hard))
        deadline = time.monotonic() + 5 * SLOW
        while True:
            r = api.raw("/api/publish", '{"channel":"full","data":{"n":5}}')
            if r.status == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["offset"], 2, "the failed publishes took no offset")
        api.close()
        srv.kill()
        srv = self.start()
        h = self.history(srv, "full")
        self.assertEqual([p["data"]["n"] for p in h["publications"]], [1, 5])

    def test_retry_while_the_original_is_written_gets_the_originals_answer(self):
        """A publish and its retry (same idempotency key) in one frame: the
        retry arrives while the original waits for the log thread. Both get
        the original's answer: the same offset when it is written, error 117
        when the write fails (before, the retry was acknowledged with an
        offset that the failure then took back)."""
        srv = self.start("--engine.segment-bytes", "1MiB")
        self.assertEqual(self.publish(srv, "pair", [{"n": 0}])[0]["offset"], 1)
        pid = srv.proc.pid
        hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)[1]

        async def pair(c, key):
            sent = await c.send_frame([("publish", {"channel": "pair", "data": {"key": key}, "idempotency_key": key}),
                                       ("publish", {"channel": "pair", "data": {"key": key}, "idempotency_key": key})])
            return [await asyncio.wait_for(f, 10 * SLOW) for _, f in sent]

        async def body():
            c = await Native.open(srv)
            a, b = await pair(c, "ok")
            self.assertEqual(a.get("result"), b.get("result"), (a, b))
            self.assertEqual(a["result"]["offset"], 2)
            for i in range(5):
                resource.prlimit(pid, resource.RLIMIT_FSIZE, (1, hard))  # every write fails (EFBIG)
                a, b = await pair(c, f"fail{i}")
                check_error(a.get("error"), 117, f"original {a}")
                check_error(b.get("error"), 117, f"retry of a failed original: {b}")
                resource.prlimit(pid, resource.RLIMIT_FSIZE, (hard, hard))
                deadline = time.monotonic() + 5 * SLOW
                while "result" not in await c.call("publish", {"channel": "probe", "data": {}}):
                    self.assertLess(time.monotonic(), deadline, "publishing resumes")
                    await asyncio.sleep(0.05)
            a, b = await pair(c, "fail0")  # the failed key was forgotten: a new publication
            self.assertEqual(a.get("result"), b.get("result"), (a, b))
            self.assertEqual(a["result"]["offset"], 3)
            await c.close()
        run(body())
        h = self.history(srv, "pair")
        self.assertEqual([p["data"] for p in h["publications"]], [{"n": 0}, {"key": "ok"}, {"key": "fail0"}])
        self.assertEqual(srv.stop(), 0, "a clean exit (under ASan: no parked retry leaked)")

    def metrics(self, srv, *names):
        with urllib.request.urlopen(srv.url("/metrics"), timeout=5 * SLOW) as r:
            lines = r.read().decode().splitlines()
        return [int(float(ln.split()[1])) for n in names for ln in lines if ln.startswith(n + " ")]

    def flood(self, srv, n=40, pad=2000):
        """n publications of `pad` bytes in one frame, a subscriber of their
        channel and one of another channel: (answers, what the subscriber got,
        whether the other channel still works)."""
        async def body():
            sub, other, pub = await Native.open(srv), await Native.open(srv), await Native.open(srv)
            await sub.result("subscribe", {"channel": "flood"})
            await other.result("subscribe", {"channel": "calm"})
            sent = await pub.send_frame([("publish", {"channel": "flood", "data": {"n": i, "pad": "p" * pad}})
                                         for i in range(n)])
            answers = [await asyncio.wait_for(f, 20 * SLOW) for _, f in sent]
            got = await sub.pubs(sum("result" in a for a in answers), channel="flood")
            await sub.quiet(0.3)
            await pub.result("publish", {"channel": "calm", "data": {"still": "fine"}})
            calm = (await other.pubs(1, channel="calm"))[0]["data"]
            for c in (sub, other, pub):
                await c.close()
            return answers, got, calm
        return run(body())

    def test_max_queued_bytes_refuses_publishes_faster_than_the_disk(self):
        """engine.max_queued_bytes = 8KiB, fsync = always (each batch waits for
        fdatasync): 40 publications of 2 KB in one frame outrun the disk. The
        ones past the bound get 117 and take no offset; the others are
        delivered in order; other channels and later publishes work."""
        srv = self.start("--engine.fsync", "always", "--engine.max-queued-bytes", "8KiB")
        answers, got, calm = self.flood(srv)
        ok = [a["result"]["offset"] for a in answers if "result" in a]
        refused = [a["error"] for a in answers if "error" in a]
        self.assertGreater(len(refused), 0, "the queue bound was hit")
        self.assertGreater(len(ok), 0)
        for e in refused:
            check_error(e, 117)
        self.assertEqual(ok, list(range(1, len(ok) + 1)), "refused publishes took no offset")
        self.assertEqual([p["offset"] for p in got], ok)
        self.assertEqual(calm, {"still": "fine"})
        self.assertEqual(self.metrics(srv, "herald_disk_queue_full_total", "herald_disk_queued_bytes"),
                         [len(refused), 0])
        self.assertEqual(self.publish(srv, "flood", [{"after": 1}])[0]["offset"], len(ok) + 1)
        self.assertEqual(self.history(srv, "flood")["offset"], len(ok) + 1)
        self.assertEqual(srv.stop(), 0)
        srv = self.start("--engine.fsync", "always", "--engine.max-queued-bytes", "0")  # 0 = unbounded
        answers, got, _ = self.flood(srv)
        self.assertTrue(all("result" in a for a in answers), [a for a in answers if "result" not in a][:2])
        self.assertEqual(len(got), 40)
        self.assertEqual(self.metrics(srv, "herald_disk_queue_full_total"), [0])

    def test_idempotency_window_survives_a_crash(self):
        srv = self.start()
        first = self.publish(srv, "idem", [{"n": 1}], idempotency_key="k1")[0]
        srv.kill()
        srv = self.start()
        again = self.publish(srv, "idem", [{"n": 1}], idempotency_key="k1")[0]
        self.assertEqual(again, first)
        self.assertEqual(len(self.history(srv, "idem")["publications"]), 1)

    def test_fsync_modes_and_bad_values(self):
        for mode in ("always", "never", "interval"):
            srv = self.start("--engine.fsync", mode)
            self.assertEqual(self.publish(srv, "m-" + mode, [{"n": 1}])[0]["offset"], 1)
            self.assertEqual(srv.stop(), 0)
        for bad in (("--engine.fsync", "sometimes"),
                    ("--engine.segment-bytes", "4KiB", "--engine.max-disk-bytes", "6KiB"),
                    ("--engine", "redis", "--redis", "127.0.0.1:1"),
                    ("--engine", "memory-delayed")):
            r = run_herald("serve", "--listen", "127.0.0.1:0", "--data-dir", self.dir, *bad)
            self.assertEqual(r.returncode, 2, (bad, r.stderr))
            self.assertIn(b"engine.", r.stderr, bad)

    def fdatasyncs_while_publishing(self, interval, seconds):
        """fdatasync calls of a server with engine.fsync_interval = interval
        while a publisher keeps its log dirty for `seconds`
        (herald_disk_syncs_total in /metrics)."""
        srv = self.start("--engine.fsync", "interval", "--engine.fsync-interval", interval)
        self.publish(srv, "sync", [{"n": 0}])  # the segment is open: only the interval's syncs follow

        def syncs():
            with urllib.request.urlopen(srv.url("/metrics"), timeout=5 * SLOW) as r:
                line = [ln for ln in r.read().decode().splitlines() if ln.startswith("herald_disk_syncs_total ")]
            self.assertEqual(len(line), 1, line)
            return int(float(line[0].split()[1]))
        before = syncs()
        api, until = Api(srv), time.monotonic() + seconds
        while time.monotonic() < until:
            api.publish("sync", {"pad": "s" * 100})
        api.close()
        return syncs() - before

    def test_fsync_interval_sets_how_often_the_log_is_synced(self):
        slow = self.fdatasyncs_while_publishing("1s", 2.5)
        self.assertGreaterEqual(slow, 1, "interval: the log is synced while it is written")
        self.assertLessEqual(slow, 6, "1s interval: about one fdatasync a second (100ms gives ~26)")
        fast = self.fdatasyncs_while_publishing("50ms", 1.5)
        self.assertGreaterEqual(fast, 10, "50ms interval: about 20 a second")

    def test_snapshot_while_publishing_starts_a_second_server(self):
        srv = self.start("--engine.segment-bytes", "8KiB", "--channels.history-size", "10000")
        first = self.publish(srv, "snap", [{"pad": "y" * 100, "n": i} for i in range(1, 101)])
        out = os.path.join(self.dir + "-copy")
        self.addCleanup(shutil.rmtree, out, True)
        stop = threading.Event()

        def publisher():
            api = Api(srv)
            while not stop.is_set():
                api.publish("snap", {"pad": "z" * 100})
            api.close()
        t = threading.Thread(target=publisher)
        t.start()
        try:
            time.sleep(0.2)
            r = run_herald("snapshot", "--data-dir", self.dir, out)
        finally:
            stop.set()
            t.join()
        self.assertEqual(r.returncode, 0, r.stderr)
        total = self.history(srv, "snap", limit=0)["offset"]
        copy = Herald(*BASE, "--data-dir", out)
        self.servers.append(copy)
        copy.start()
        h = self.history(copy, "snap")
        self.assertEqual(h["epoch"], first[0]["epoch"])
        self.assertGreaterEqual(h["offset"], 100)
        self.assertLessEqual(h["offset"], total)
        offs = [p["offset"] for p in self.history(copy, "snap", reverse=True, limit=100)["publications"]]
        self.assertEqual(offs, list(range(h["offset"], h["offset"] - len(offs), -1)), "no gap at the copy's end")

if __name__ == "__main__":
    main()
