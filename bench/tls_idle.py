#!/usr/bin/env python3
"""tls_idle.py - bytes per idle connection, TLS vs plain, and TLS handshakes/s.

Starts the real herald (HERALD_BIN, default build/herald) with one worker and
a throw-away self-signed EC certificate, opens N connections (full TLS
handshake each, then one keep-alive request so the connection is past the
handshake like a real client's), and reports the growth of the server's RSS
divided by N. The same for plain TCP connections as the reference. Then
runs `openssl s_time -new` for the handshake rate (one client process, so the
client's own handshake cost is on the same 2 cores: a lower bound).

Usage: bench/tls_idle.py [N ...]   (default 1000 5000)
"""
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.environ.get("HERALD_BIN", os.path.join(HERE, "..", "build", "herald"))


def rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def start(args):
    p = subprocess.Popen([BIN, "serve", "--listen", "127.0.0.1:0", "--workers", "1", *args],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in p.stdout:
        if "listening on" in line:
            port = int(line.split("://")[1].split()[0].rsplit(":", 1)[1])
            return p, port
    raise SystemExit("herald did not start")


def measure(n, tls, tmp):
    args = ["--tls-cert", f"{tmp}/c.pem", "--tls-key", f"{tmp}/k.pem"] if tls else []
    p, port = start(args + ["--http.keepalive-timeout", "10m"])
    ctx = ssl.create_default_context(cafile=f"{tmp}/c.pem")
    conns = []
    try:
        # warm up (allocator pools, one handshake) and take the baseline
        for _ in range(20):
            conns.append(connect(port, tls, ctx))
        time.sleep(0.3)
        base = rss(p.pid)
        t0 = time.monotonic()
        for _ in range(n):
            conns.append(connect(port, tls, ctx))
        dt = time.monotonic() - t0
        time.sleep(0.5)
        grown = rss(p.pid) - base
        return grown / n, n / dt
    finally:
        for s in conns:
            s.close()
        p.terminate()
        p.wait(10)


def connect(port, tls, ctx):
    s = socket.create_connection(("127.0.0.1", port))
    if tls:
        s = ctx.wrap_socket(s, server_hostname="localhost")
    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    while not data.endswith(b"}"):
        data += s.recv(4096)
    return s


def main():
    ns = [int(a) for a in sys.argv[1:]] or [1000, 5000]
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-keyout", f"{tmp}/k.pem", "-out", f"{tmp}/c.pem", "-days", "1",
                        "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        print(f"{'N':>6} {'plain B/conn':>13} {'TLS B/conn':>11} {'TLS conns/s (python client)':>28}")
        for n in ns:
            plain, _ = measure(n, False, tmp)
            tls, rate = measure(n, True, tmp)
            print(f"{n:>6} {plain:>13.0f} {tls:>11.0f} {rate:>28.0f}")
        p, port = start(["--tls-cert", f"{tmp}/c.pem", "--tls-key", f"{tmp}/k.pem"])
        try:
            for proto in ("-tls1_3", "-tls1_2"):
                c0 = cpu_seconds(p.pid)
                out = subprocess.run(["openssl", "s_time", "-connect", f"127.0.0.1:{port}", "-new", "-time", "5",
                                      proto], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True).stdout
                used = cpu_seconds(p.pid) - c0
                line = [ln for ln in out.splitlines() if "connections in" in ln and "real seconds" in ln]
                n = int(line[0].split()[0]) if line else 0
                print(f"openssl s_time -new {proto}: {line[0] if line else out[-300:]}; server CPU {used:.2f} s"
                      f" = {n / used if used else 0:.0f} handshakes per server CPU second")
        finally:
            p.terminate()
            p.wait(10)


if __name__ == "__main__":
    main()
