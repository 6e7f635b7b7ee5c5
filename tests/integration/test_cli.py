#!/usr/bin/env python3
"""The herald command line: --version, --help, usage errors (exit 2),
check-config (ok / errors naming FILE:LINE: key), configuration precedence
(defaults < file < environment < flags), port in use (exit 1) and signals
(SIGTERM / SIGINT: graceful exit 0)."""

import os
import shutil
import signal
import socket
import sys
import tempfile
import textwrap
import time
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from herald_testlib import OP_CLOSE, SLOW, Herald, RawWS, dump_output, main, run_herald  # noqa: E402


class TmpDirCase(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="herald-cli-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def write(self, name, text):
        p = os.path.join(self.tmp, name)
        with open(p, "w") as f:
            f.write(textwrap.dedent(text).lstrip("\n"))
        return p


class TestBasics(TmpDirCase):

    def test_version(self):
        r = run_herald("--version")
        self.assertEqual(r.returncode, 0, r)
        self.assertRegex(r.stdout.decode(), r"^herald \d+\.\d+\.\d+\S*\n$")

    def test_help(self):
        r = run_herald("--help")
        self.assertEqual(r.returncode, 0, r)
        out = r.stdout.decode()
        self.assertIn("herald", out)
        self.assertIn("--listen", out)
        self.assertIn("check-config", out)

    def test_unknown_flag_exit_2(self):
        for argv in (["--no-such-flag"], ["serve", "--no-such-flag", "1"], ["serve", "--websocket.no-such-key", "1"]):
            with self.subTest(argv=argv):
                r = run_herald(*argv, "--listen", "127.0.0.1:0", timeout=10)
                self.assertEqual(r.returncode, 2, r)
                self.assertIn(b"no-such", r.stderr, r)

    def test_unknown_command_exit_2(self):
        r = run_herald("frobnicate", timeout=10)
        self.assertEqual(r.returncode, 2, r)

    def test_bad_flag_value_exit_2(self):
        for argv in (["--workers", "lots"], ["--websocket.max-message-size", "huge"],
                     ["--http.header-timeout", "soon"], ["--websocket.deflate", "maybe"]):
            with self.subTest(argv=argv):
                r = run_herald("serve", "--listen", "127.0.0.1:0", *argv, timeout=10)
                self.assertEqual(r.returncode, 2, r)
                self.assertTrue(r.stderr.strip(), "exit 2 without a message")

    def test_bad_env_value_exit_2(self):
        r = run_herald("serve", "--listen", "127.0.0.1:0", env={"HERALD_WEBSOCKET_MAX_MESSAGE_SIZE": "huge"},
                       timeout=10)
        self.assertEqual(r.returncode, 2, r)
        self.assertIn(b"HERALD_WEBSOCKET_MAX_MESSAGE_SIZE", r.stderr, r)

    def test_missing_flag_value_exit_2(self):
        r = run_herald("serve", "--listen", timeout=10)
        self.assertEqual(r.returncode, 2, r)


class TestCheckConfig(TmpDirCase):

    def test_ok(self):
        p = self.write("good.toml", """
            # a comment
            [server]
            listen = "127.0.0.1:8080"
            workers = 2

            [http]
            max_body_size = "1MiB"   # trailing comment

            [websocket]
            ping_interval = "25s"
            allowed_origins = ["https://a.example"]
            """)
        r = run_herald("check-config", p)
        self.assertEqual(r.returncode, 0, r)
        self.assertEqual(r.stdout.decode().strip(), f"{p}: ok")

    def test_unknown_key(self):
        p = self.write("unknown.toml", """
            [server]
            workers = 2

            [websocket]
            max_mesage_size = "1MiB"
            """)
        r = run_herald("check-config", p)
        self.assertEqual(r.returncode, 2, r)
        err = r.stderr.decode()
        self.assertIn(f"{p}:5:", err)
        self.assertIn("max_mesage_size", err)
        self.assertIn('did you mean "websocket.max_message_size"?', err)  # as namespace keys list theirs
        self.assertEqual(r.stdout, b"", "nothing on stdout for an invalid file")

    def test_values_serve_would_refuse(self):
        """check-config refuses what serve would (a port over 65535) and every
        value error names file, line and key (the HMAC secret's length too)."""
        for doc, line, text in (('[server]\nlisten = "127.0.0.1:99999"\n', 2, 'server.listen: "127.0.0.1:99999" is not'),
                                ('[auth]\ntoken_hmac_secret = "short"\n', 2, "auth.token_hmac_secret: at least 32 bytes")):
            with self.subTest(text=text):
                p = self.write("values.toml", doc)
                r = run_herald("check-config", p)
                self.assertEqual(r.returncode, 2, r)
                self.assertIn(f"{p}:{line}: {text}", r.stderr.decode())
        r = run_herald("serve", "--listen", "127.0.0.1:0", "--channel.history-size", "5", timeout=10)
        self.assertEqual(r.returncode, 2, r)
        self.assertIn(b"did you mean --channels.history-size?", r.stderr)

    def test_wrong_type(self):
        p = self.write("type.toml", """
            [server]
            listen = "127.0.0.1:8080"
            workers = "two"
            """)
        r = run_herald("check-config", p)
        self.assertEqual(r.returncode, 2, r)
        err = r.stderr.decode()
        self.assertIn(f"{p}:3:", err)
        self.assertIn("workers", err)

    def test_wrong_type_list(self):
        p = self.write("list.toml", """
            [websocket]

            allowed_origins = "https://a.example"
            """)
        r = run_herald("check-config", p)
        self.assertEqual(r.returncode, 2, r)
        err = r.stderr.decode()
        self.assertIn(f"{p}:3:", err)
        self.assertIn("allowed_origins", err)

    def test_bad_size(self):
        p = self.write("size.toml", """
            [http]
            max_body_size = "lots"
            """)
        r = run_herald("check-config", p)
        self.assertEqual(r.returncode, 2, r)
        self.assertIn(f"{p}:2:", r.stderr.decode())
        self.assertIn("max_body_size", r.stderr.decode())

    def test_unknown_section(self):
        p = self.write("section.toml", """
            [server]
            workers = 1
            [nonsense]
            x = 1
            """)
        r = run_herald("check-config", p)
        self.assertEqual(r.returncode, 2, r)
        self.assertIn(f"{p}:3:", r.stderr.decode())
        self.assertIn("nonsense", r.stderr.decode())

    def test_missing_file(self):
        r = run_herald("check-config", os.path.join(self.tmp, "absent.toml"))
        self.assertEqual(r.returncode, 2, r)
        self.assertIn(b"absent.toml", r.stderr)

    def test_syntax_error(self):
        p = self.write("syntax.toml", """
            [server]
            workers 2
            """)
        r = run_herald("check-config", p)
        self.assertEqual(r.returncode, 2, r)
        self.assertIn(f"{p}:2:", r.stderr.decode())


def echo_status(srv, nbytes):
    with srv.http() as c:
        r = c.request("POST", "/http/echo", {"Content-Type": "application/octet-stream"}, b"b" * nbytes)
        return r.status


class TestPrecedence(TmpDirCase):
    """defaults < file < environment < flags, observed through http.max_body_size."""

    def serve(self, *args, env=None):
        srv = Herald(*args, env=env)
        srv.start()
        self.addCleanup(srv.stop)
        return srv

    def test_default(self):
        srv = self.serve()
        self.assertEqual(echo_status(srv, 2000), 200)

    def test_file(self):
        p = self.write("f.toml", """
            [http]
            max_body_size = 1000
            """)
        srv = self.serve("--config", p)
        self.assertEqual(echo_status(srv, 900), 200)
        self.assertEqual(echo_status(srv, 1100), 413)

    def test_env_var_applies(self):
        srv = self.serve(env={"HERALD_HTTP_MAX_BODY_SIZE": "1000"})
        self.assertEqual(echo_status(srv, 900), 200)
        self.assertEqual(echo_status(srv, 1100), 413)

    def test_env_beats_file(self):
        p = self.write("f.toml", """
            [http]
            max_body_size = "500"
            """)
        srv = self.serve("--config", p, env={"HERALD_HTTP_MAX_BODY_SIZE": "1000"})
        self.assertEqual(echo_status(srv, 900), 200)
        self.assertEqual(echo_status(srv, 1100), 413)

    def test_flag_beats_env(self):
        srv = self.serve("--http.max-body-size", "1000", env={"HERALD_HTTP_MAX_BODY_SIZE": "500"})
        self.assertEqual(echo_status(srv, 900), 200)
        self.assertEqual(echo_status(srv, 1100), 413)

    def test_flag_with_equals_and_underscores(self):
        srv = self.serve("--http.max_body_size=1000")
        self.assertEqual(echo_status(srv, 900), 200)
        self.assertEqual(echo_status(srv, 1100), 413)

    def test_config_file_via_env(self):
        p = self.write("f.toml", """
            [http]
            max_body_size = 1000
            """)
        srv = self.serve(env={"HERALD_CONFIG": p})
        self.assertEqual(echo_status(srv, 1100), 413)

    def test_listen_from_env(self):
        srv = Herald(env={"HERALD_LISTEN": "127.0.0.1:0"}, add_listen=False)
        srv.start()
        self.addCleanup(srv.stop)
        self.assertNotIn("--listen", srv.argv())
        with srv.http() as c:
            self.assertEqual(c.request("GET", "/health").status, 200)

    def test_listen_from_file(self):
        p = self.write("l.toml", """
            [server]
            listen = "127.0.0.1:0"
            workers = 1
            """)
        srv = Herald("--config", p, add_listen=False, add_workers=False)
        srv.start()
        self.addCleanup(srv.stop)
        with srv.http() as c:
            self.assertEqual(c.request("GET", "/health").status, 200)

    def test_ws_limit_flag(self):
        srv = self.serve("--websocket.echo-max-message-size", "1MiB")
        w = RawWS.connect(srv.addr)
        self.addCleanup(w.close_socket)
        w.send_raw(bytes([0x82, 0xFF]) + (1024 * 1024 + 1).to_bytes(8, "big") + b"\0\0\0\0")
        w.expect_close(1009)

    def test_bad_config_file_exit_2(self):
        p = self.write("bad.toml", """
            [server]
            no_such_key = 1
            """)
        r = run_herald("serve", "--listen", "127.0.0.1:0", "--config", p, timeout=10)
        self.assertEqual(r.returncode, 2, r)
        self.assertIn(f"{p}:2:".encode(), r.stderr)


class TestRuntime(TmpDirCase):

    def test_port_in_use_exit_1(self):
        blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(blocker.close)
        blocker.bind(("127.0.0.1", 0))
        blocker.listen(8)
        port = blocker.getsockname()[1]
        r = run_herald("serve", "--listen", f"127.0.0.1:{port}", "--workers", "2", timeout=15)
        self.assertEqual(r.returncode, 1, r)
        err = r.stderr.decode().lower()
        self.assertTrue(str(port) in err or "in use" in err, f"message does not name the problem: {err!r}")

    def test_sigterm_exit_0(self):
        self._signal_exit(signal.SIGTERM)

    def test_sigint_exit_0(self):
        self._signal_exit(signal.SIGINT)

    def _signal_exit(self, sig):
        srv = Herald("--drain-timeout", "3s", workers=2)
        srv.start()
        try:
            w = RawWS.connect(srv.addr)
            with srv.http() as c:
                self.assertEqual(c.request("GET", "/health").status, 200)
            t0 = time.monotonic()
            srv.signal(sig)
            f = w.recv_frame(timeout=5)
            self.assertEqual((f.opcode, f.close_code()), (OP_CLOSE, 1001))
            w.send_close(1001)
            rc = srv.wait(8 * SLOW)
            elapsed = time.monotonic() - t0
            w.close_socket()
            self.assertEqual(rc, 0, f"exit code after {sig!r}: {rc}")
            self.assertLess(elapsed, 3.0 * SLOW, f"exit took {elapsed:.2f}s although the client answered the close")
        except BaseException:
            dump_output(srv, f"server output ({sig!r} test)")
            raise
        finally:
            srv.stop()

    def test_startup_log_line(self):
        srv = Herald(workers=2)
        srv.start()
        try:
            self.assertRegex(srv.output(), r"listening on http://127\.0\.0\.1:\d+")
            self.assertGreater(srv.port, 0)
        finally:
            self.assertEqual(srv.stop(), 0)


if __name__ == "__main__":
    main()
