"""Minimal sessd sealed-protocol helpers for hostile-peer tests (PROTOCOL.md)."""
import hashlib
import hmac
import os
import socket
import struct
import time

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat


# ---------- msgpack ----------
def mp_uint(v):
    if v < 0x80:
        return bytes([v])
    if v < 0x100:
        return b"\xcc" + bytes([v])
    if v < 0x10000:
        return b"\xcd" + struct.pack(">H", v)
    if v < 0x100000000:
        return b"\xce" + struct.pack(">I", v)
    return b"\xcf" + struct.pack(">Q", v)


def mp_str(s):
    s = s.encode() if isinstance(s, str) else s
    n = len(s)
    if n < 32:
        return bytes([0xA0 | n]) + s
    if n < 256:
        return b"\xd9" + bytes([n]) + s
    if n < 65536:
        return b"\xda" + struct.pack(">H", n) + s
    return b"\xdb" + struct.pack(">I", n) + s


def mp_bin(b):
    n = len(b)
    if n < 256:
        return b"\xc4" + bytes([n]) + b
    if n < 65536:
        return b"\xc5" + struct.pack(">H", n) + b
    return b"\xc6" + struct.pack(">I", n) + b


def mp_array(items):
    n = len(items)
    head = bytes([0x90 | n]) if n < 16 else b"\xdc" + struct.pack(">H", n)
    return head + b"".join(items)


def mp_map(pairs):
    n = len(pairs)
    head = bytes([0x80 | n]) if n < 16 else b"\xde" + struct.pack(">H", n)
    return head + b"".join(k + v for k, v in pairs)


NIL, TRUE, FALSE = b"\xc0", b"\xc3", b"\xc2"


def mp_decode(b, i=0):
    """Decode one value at b[i:]; returns (value, next index). Raises on malformed."""
    t = b[i]
    if t <= 0x7F:
        return t, i + 1
    if t >= 0xE0:
        return t - 256, i + 1
    if 0x80 <= t <= 0x8F:
        return _map(b, i + 1, t & 0xF)
    if 0x90 <= t <= 0x9F:
        return _arr(b, i + 1, t & 0xF)
    if 0xA0 <= t <= 0xBF:
        n = t & 0x1F
        return b[i + 1:i + 1 + n], i + 1 + n
    if t == 0xC0:
        return None, i + 1
    if t == 0xC2:
        return False, i + 1
    if t == 0xC3:
        return True, i + 1
    if t in (0xC4, 0xD9):
        n = b[i + 1]
        return b[i + 2:i + 2 + n], i + 2 + n
    if t in (0xC5, 0xDA):
        n = struct.unpack(">H", b[i + 1:i + 3])[0]
        return b[i + 3:i + 3 + n], i + 3 + n
    if t in (0xC6, 0xDB):
        n = struct.unpack(">I", b[i + 1:i + 5])[0]
        return b[i + 5:i + 5 + n], i + 5 + n
    if t == 0xCC:
        return b[i + 1], i + 2
    if t == 0xCD:
        return struct.unpack(">H", b[i + 1:i + 3])[0], i + 3
    if t == 0xCE:
        return struct.unpack(">I", b[i + 1:i + 5])[0], i + 5
    if t == 0xCF:
        return struct.unpack(">Q", b[i + 1:i + 9])[0], i + 9
    if t == 0xDC:
        return _arr(b, i + 3, struct.unpack(">H", b[i + 1:i + 3])[0])
    if t == 0xDD:
        return _arr(b, i + 5, struct.unpack(">I", b[i + 1:i + 5])[0])
    if t == 0xDE:
        return _map(b, i + 3, struct.unpack(">H", b[i + 1:i + 3])[0])
    if t == 0xDF:
        return _map(b, i + 5, struct.unpack(">I", b[i + 1:i + 5])[0])
    raise ValueError("msgpack type 0x%02x" % t)


def _arr(b, i, n):
    out = []
    for _ in range(n):
        v, i = mp_decode(b, i)
        out.append(v)
    return out, i


def _map(b, i, n):
    out = {}
    for _ in range(n):
        k, i = mp_decode(b, i)
        v, i = mp_decode(b, i)
        out[bytes(k) if isinstance(k, (bytes, bytearray)) else k] = v
    return out, i


def frame(body):
    return struct.pack(">I", len(body)) + body


OP = dict(HELLO=1, PING=2, GET=0x10, SET=0x11, TOUCH=0x12, DESTROY=0x13, FLASH_PUSH=0x20,
          FLASH_POP=0x21, COUNT=0x30, LIST=0x31, CLEAR=0x32, STATS=0x33)
STATUS = {0: "OK", 1: "NOT_FOUND", 2: "BAD_REQUEST", 3: "TOO_LARGE", 4: "NO_MEMORY",
          5: "UNKNOWN_OP", 6: "BAD_VERSION", 7: "NOT_READY", 8: "IO_ERROR", 9: "AUTH_FAILED",
          10: "INTERNAL", 11: "SHUTTING_DOWN", 12: "LIMIT", 13: "BUSY"}


def ping(rid):
    return frame(mp_array([mp_uint(OP["PING"]), mp_uint(rid)]))


def set_(rid, sid, data, ttl=60000, ns=NIL):
    return frame(mp_array([mp_uint(OP["SET"]), mp_uint(rid), ns, mp_str(sid), mp_bin(data),
                           mp_uint(ttl)]))


def get(rid, sid, ns=NIL):
    return frame(mp_array([mp_uint(OP["GET"]), mp_uint(rid), ns, mp_str(sid)]))


def stats(rid):
    return frame(mp_array([mp_uint(OP["STATS"]), mp_uint(rid), NIL]))


def hello(rid, auth, version=1, name="hostile"):
    return frame(mp_array([mp_uint(OP["HELLO"]), mp_uint(rid), mp_uint(version), mp_str(name),
                           auth]))


# ---------- key exchange ----------
def hm(key, *parts):
    return hmac.new(key, b"".join(parts), hashlib.sha256).digest()


def psk_of(secret):
    return hm(b"sessd-psk-v1", secret)


def pub(sk):
    return sk.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def derive(psk, shared, c_pk, s_pk):
    prk = hm(psk, shared)
    info = b"sessd-kx-v1 keys" + c_pk + s_pk
    okm, t = b"", b""
    for i in (1, 2, 3):
        t = hm(prk, t, info, bytes([i]))
        okm += t
    c2s, s2c, confirm = okm[:32], okm[32:64], okm[64:96]
    return c2s, s2c, hm(confirm, b"sessd-kx-v1 server", c_pk, s_pk)


def nonce(n):
    return b"\0\0\0\0" + struct.pack("<Q", n)


def seal_record(key, number, plain, length=None):
    """A record; ${length} overrides the header (the AD is the header actually sent)."""
    n = len(plain) + 16 if length is None else length
    header = struct.pack(">I", n & 0xFFFFFFFF)
    return header + ChaCha20Poly1305(key).encrypt(nonce(number), plain, header)


def open_record(key, number, record):
    return ChaCha20Poly1305(key).decrypt(nonce(number), record[4:], record[:4])


class Closed(Exception):
    pass


def recv_exact(sock, n, deadline):
    out = b""
    while len(out) < n:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(n - len(out))
        except socket.timeout:
            raise TimeoutError("timed out after %d of %d bytes" % (len(out), n))
        except ConnectionResetError:
            raise Closed("reset after %d of %d bytes" % (len(out), n))
        if not chunk:
            raise Closed("closed after %d of %d bytes" % (len(out), n))
        out += chunk
    return out


def recv_frame_plain(sock, timeout=5.0):
    deadline = time.monotonic() + timeout
    n = struct.unpack(">I", recv_exact(sock, 4, deadline))[0]
    return recv_exact(sock, n, deadline)


def decode_reply(body):
    v, i = mp_decode(body)
    assert i == len(body), "trailing bytes in reply"
    rid, status, result = v
    return rid, status, result


class Sealed:
    """A client connection that completed a sealed HELLO."""

    def __init__(self, addr, secret, connect=True):
        self.addr = addr
        self.psk = psk_of(secret)
        self.sent = 0
        self.received = 0
        self.inbuf = b""  # opened plaintext not yet framed
        self.sock = None
        if connect:
            self.connect()

    def _socket(self):
        if isinstance(self.addr, str):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        else:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.connect(self.addr)
        return s

    def kx_auth(self):
        self.c_sk = X25519PrivateKey.generate()
        self.c_pk = pub(self.c_sk)
        proof = hm(self.psk, b"sessd-kx-v1 client", self.c_pk)
        return mp_map([(mp_str("kx"), mp_bin(self.c_pk)), (mp_str("proof"), mp_bin(proof))])

    def connect(self, extra_after_hello=b""):
        self.sock = self._socket()
        self.sock.sendall(hello(1, self.kx_auth()) + extra_after_hello)
        rid, status, result = decode_reply(recv_frame_plain(self.sock))
        if status != 0:
            raise RuntimeError("HELLO failed: %s %r" % (STATUS.get(status), result))
        kx = result[b"kx"]
        s_pk, s_proof = kx[b"key"], kx[b"proof"]
        shared = self.c_sk.exchange(X25519PublicKey.from_public_bytes(s_pk))
        self.c2s, self.s2c, expect = derive(self.psk, shared, self.c_pk, s_pk)
        assert hmac.compare_digest(expect, s_proof), "server proof wrong"
        self.hello_result = result

    def record(self, plain, number=None, key=None, length=None):
        n = self.sent if number is None else number
        r = seal_record(key or self.c2s, n, plain, length)
        if number is None:
            self.sent += 1
        return r

    def send_plain(self, plain, max_record=65536):
        out = b""
        for i in range(0, len(plain), max_record):
            out += self.record(plain[i:i + max_record])
        self.sock.sendall(out)

    def recv_reply(self, timeout=5.0):
        """The next reply frame, opening records as needed."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self.inbuf) >= 4:
                n = struct.unpack(">I", self.inbuf[:4])[0]
                if len(self.inbuf) >= 4 + n:
                    body = self.inbuf[4:4 + n]
                    self.inbuf = self.inbuf[4 + n:]
                    return decode_reply(body)
            header = recv_exact(self.sock, 4, deadline)
            n = struct.unpack(">I", header)[0]
            if not 17 <= n <= 65552:
                raise ValueError("server sent a record length %d" % n)
            rest = recv_exact(self.sock, n, deadline)
            self.inbuf += open_record(self.s2c, self.received, header + rest)
            self.received += 1

    def call(self, frame_bytes, timeout=5.0):
        self.send_plain(frame_bytes)
        return self.recv_reply(timeout)

    def expect_closed(self, timeout=5.0):
        """Read until EOF: returns the replies that came before it."""
        replies = []
        try:
            while True:
                replies.append(self.recv_reply(timeout))
        except Closed:
            return replies

    def close(self):
        if self.sock:
            self.sock.close()
            self.sock = None
