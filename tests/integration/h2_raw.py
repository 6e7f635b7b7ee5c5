"""h2_raw - a tiny HTTP/2 client built from raw frames (struct), for tests
that must misbehave on purpose (never send WINDOW_UPDATE, flood RST_STREAM,
CONTINUATION or PING) or speak RFC 8441's extended CONNECT.

Requests are HPACK-encoded as literal fields without indexing (no Huffman,
no table), which every decoder accepts. Responses are not HPACK-decoded:
the tests look at frame types, flags, stream ids, error codes and DATA; the
first byte of a response header block tells :status 200 (0x88, the static
table's index 8) from the rest.
"""

import socket
import ssl
import struct
import time

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4
NO_ERROR, PROTOCOL_ERROR, REFUSED_STREAM, CANCEL, ENHANCE_YOUR_CALM = 0x0, 0x1, 0x7, 0x8, 0xb
SETTINGS_INITIAL_WINDOW_SIZE, SETTINGS_ENABLE_CONNECT_PROTOCOL = 0x4, 0x8


def hpack_int(value, prefix_bits, first=0):
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out = [first | limit]
    value -= limit
    while value >= 128:
        out.append((value & 127) | 128)
        value >>= 7
    out.append(value)
    return bytes(out)


def hpack(headers):
    out = b""
    for name, value in headers:
        n, v = name.encode(), value.encode() if isinstance(value, str) else value
        out += b"\x00" + hpack_int(len(n), 7) + n + hpack_int(len(v), 7) + v
    return out


def frame(ftype, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", sid) + payload


class H2Closed(Exception):
    pass


class H2:
    """One HTTP/2 connection. settings: {id: value} sent in our SETTINGS."""

    def __init__(self, port, settings=None, tls=False, host="127.0.0.1", rcvbuf=None, timeout=10.0):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.settimeout(timeout)
        s.connect((host, port))
        if tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            ctx.set_alpn_protocols(["h2"])
            s = ctx.wrap_socket(s, server_hostname="localhost")
            assert s.selected_alpn_protocol() == "h2", s.selected_alpn_protocol()
        self.sock = s
        self.buf = b""
        self.next_id = 1
        payload = b"".join(struct.pack(">HI", k, v) for k, v in (settings or {}).items())
        self.send(PREFACE + frame(SETTINGS, 0, 0, payload))
        self.server_settings = None

    def send(self, data):
        self.sock.sendall(data)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def request(self, path, method="GET", headers=(), end=True, protocol=None, authority="localhost"):
        sid = self.next_id
        self.next_id += 2
        hs = [(":method", method), (":scheme", "http"), (":authority", authority), (":path", path)]
        if protocol:
            hs.append((":protocol", protocol))
        block = hpack(hs + list(headers))
        self.send(frame(HEADERS, END_HEADERS | (END_STREAM if end else 0), sid, block))
        return sid

    def data(self, sid, payload, end=False):
        self.send(frame(DATA, END_STREAM if end else 0, sid, payload))

    def window_update(self, sid, inc):
        self.send(frame(WINDOW_UPDATE, 0, sid, struct.pack(">I", inc)))

    def read_frame(self, timeout=5.0):
        """The next frame (type, flags, sid, payload), None after timeout; H2Closed at EOF.
        SETTINGS from the server are acknowledged."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buf) >= 9:
                ln = struct.unpack(">I", b"\0" + self.buf[:3])[0]
                if len(self.buf) >= 9 + ln:
                    ftype, flags = self.buf[3], self.buf[4]
                    sid = struct.unpack(">I", self.buf[5:9])[0] & 0x7FFFFFFF
                    payload = self.buf[9:9 + ln]
                    self.buf = self.buf[9 + ln:]
                    if ftype == SETTINGS and not flags & ACK:
                        self.server_settings = {struct.unpack(">H", payload[i:i + 2])[0]:
                                                struct.unpack(">I", payload[i + 2:i + 6])[0]
                                                for i in range(0, len(payload), 6)}
                        try:
                            self.send(frame(SETTINGS, ACK, 0))
                        except OSError:
                            pass  # closed by the server: its frames are still read
                    return ftype, flags, sid, payload
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except (socket.timeout, TimeoutError):
                return None
            except (ConnectionResetError, ssl.SSLError) as e:
                raise H2Closed(str(e))
            if not chunk:
                raise H2Closed("eof")
            self.buf += chunk

    def until(self, pred, timeout=5.0):
        """Read frames until pred(frame) is true: that frame, or None at the deadline or EOF."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                f = self.read_frame(left)
            except H2Closed:
                return None
            if f is None:
                return None
            if pred(f):
                return f

    def goaway(self, timeout=5.0):
        """The error code of the server's GOAWAY (None if none came)."""
        f = self.until(lambda f: f[0] == GOAWAY, timeout)
        return struct.unpack(">I", f[3][4:8])[0] if f else None


def ws_frame(payload, opcode=1):
    """A masked client WebSocket frame (mask of zeros: the bytes stay readable)."""
    n = len(payload)
    head = bytes([0x80 | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack(">H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack(">Q", n)
    return head + b"\0\0\0\0" + payload
