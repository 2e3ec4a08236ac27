"""A sessd protocol version 1 client written from protocol/PROTOCOL.md alone.

No code of sessd, libsessd or connect-sessd was read to write it. MessagePack is written
here (the spec's rules on str/bin, nesting and exact consumption are part of what is
checked); the sealed connections use PyNaCl (Debian's python3-nacl) for X25519 and
ChaCha20-Poly1305, and the standard library for HMAC and HKDF-SHA-256.
"""

import hashlib
import hmac
import os
import socket
import struct

# --- statuses and opcodes (PROTOCOL.md, "Statuses" and "Operations") -------------------

STATUS = {
    0: "OK", 1: "NOT_FOUND", 2: "BAD_REQUEST", 3: "TOO_LARGE", 4: "NO_MEMORY",
    5: "UNKNOWN_OP", 6: "BAD_VERSION", 7: "NOT_READY", 8: "IO_ERROR", 9: "AUTH_FAILED",
    10: "INTERNAL", 11: "SHUTTING_DOWN", 12: "LIMIT", 13: "BUSY", 14: "CONFLICT",
    15: "FORBIDDEN",
}
STATUS_NUM = {v: k for k, v in STATUS.items()}
CLOSING = {"BAD_REQUEST", "TOO_LARGE", "NOT_READY", "BAD_VERSION", "AUTH_FAILED", "BUSY",
           "SHUTTING_DOWN"}

OP = {
    "HELLO": 0x01, "PING": 0x02, "RETIRE": 0x03,
    "GET": 0x10, "SET": 0x11, "TOUCH": 0x12, "DESTROY": 0x13, "SET_IF": 0x14, "TTL": 0x15,
    "LOAD": 0x16, "TOUCH_IF": 0x17,
    "FLASH_PUSH": 0x20, "FLASH_POP": 0x21, "FLASH_PUSH_EXISTING": 0x22,
    "DESTROY_IF_FLASH": 0x23,
    "COUNT": 0x30, "LIST": 0x31, "CLEAR": 0x32, "STATS": 0x33, "NAMESPACES": 0x34,
}

PRE_HELLO_LIMIT = 4096
MAX_DEPTH = 16
TTL_MAX = 316224000000


class Malformed(Exception):
    """A body that breaks the MessagePack or protocol rules."""


class Str(bytes):
    """A MessagePack str: bytes (any, invalid UTF-8 included), kept apart from bin."""

    def __repr__(self):
        return "Str(%r)" % bytes(self)


class Raw(bytes):
    """Already-encoded MessagePack bytes, written as they are (HELLO's auth)."""


class Ext:
    def __init__(self, code, data):
        self.code, self.data = code, data


# --- MessagePack writer: shortest forms ----------------------------------------------------

def pack(v):
    out = bytearray()
    _pack(v, out)
    return bytes(out)


def _pack(v, out):
    if isinstance(v, Raw):
        out += v
    elif v is None:
        out.append(0xC0)
    elif v is True:
        out.append(0xC3)
    elif v is False:
        out.append(0xC2)
    elif isinstance(v, int):
        if 0 <= v <= 0x7F:
            out.append(v)
        elif 0 <= v <= 0xFF:
            out += b"\xcc" + struct.pack(">B", v)
        elif 0 <= v <= 0xFFFF:
            out += b"\xcd" + struct.pack(">H", v)
        elif 0 <= v <= 0xFFFFFFFF:
            out += b"\xce" + struct.pack(">I", v)
        elif 0 <= v < 1 << 64:
            out += b"\xcf" + struct.pack(">Q", v)
        elif -32 <= v < 0:
            out.append(v & 0xFF)
        elif -128 <= v < 0:
            out += b"\xd0" + struct.pack(">b", v)
        elif -32768 <= v < 0:
            out += b"\xd1" + struct.pack(">h", v)
        elif -(1 << 31) <= v < 0:
            out += b"\xd2" + struct.pack(">i", v)
        else:
            out += b"\xd3" + struct.pack(">q", v)
    elif isinstance(v, float):
        out += b"\xcb" + struct.pack(">d", v)
    elif isinstance(v, Str) or isinstance(v, str):
        b = v.encode() if isinstance(v, str) else bytes(v)
        n = len(b)
        if n <= 31:
            out.append(0xA0 | n)
        elif n <= 0xFF:
            out += b"\xd9" + struct.pack(">B", n)
        elif n <= 0xFFFF:
            out += b"\xda" + struct.pack(">H", n)
        else:
            out += b"\xdb" + struct.pack(">I", n)
        out += b
    elif isinstance(v, (bytes, bytearray)):
        n = len(v)
        if n <= 0xFF:
            out += b"\xc4" + struct.pack(">B", n)
        elif n <= 0xFFFF:
            out += b"\xc5" + struct.pack(">H", n)
        else:
            out += b"\xc6" + struct.pack(">I", n)
        out += v
    elif isinstance(v, (list, tuple)):
        n = len(v)
        if n <= 15:
            out.append(0x90 | n)
        elif n <= 0xFFFF:
            out += b"\xdc" + struct.pack(">H", n)
        else:
            out += b"\xdd" + struct.pack(">I", n)
        for x in v:
            _pack(x, out)
    elif isinstance(v, dict):
        n = len(v)
        if n <= 15:
            out.append(0x80 | n)
        elif n <= 0xFFFF:
            out += b"\xde" + struct.pack(">H", n)
        else:
            out += b"\xdf" + struct.pack(">I", n)
        for k, x in v.items():
            _pack(k, out)
            _pack(x, out)
    else:
        raise TypeError("cannot pack %r" % (v,))


# --- MessagePack reader: strict ------------------------------------------------------------

class Reader:
    """Decodes one value at a time from a body; never allocates from a declared count."""

    def __init__(self, buf):
        self.b = memoryview(buf)
        self.p = 0

    def left(self):
        return len(self.b) - self.p

    def take(self, n):
        if n > self.left():
            raise Malformed("value cut short")
        s = bytes(self.b[self.p:self.p + n])
        self.p += n
        return s

    def u(self, n):
        return int.from_bytes(self.take(n), "big")

    def s(self, n):
        return int.from_bytes(self.take(n), "big", signed=True)

    def value(self, depth=1):
        if depth > MAX_DEPTH + 1:
            raise Malformed("nested deeper than 16")
        c = self.u(1)
        if c <= 0x7F:
            return c
        if c >= 0xE0:
            return c - 0x100
        if 0x80 <= c <= 0x8F:
            return self._map(c & 0x0F, depth)
        if 0x90 <= c <= 0x9F:
            return self._arr(c & 0x0F, depth)
        if 0xA0 <= c <= 0xBF:
            return Str(self.take(c & 0x1F))
        if c == 0xC0:
            return None
        if c == 0xC1:
            raise Malformed("reserved byte 0xc1")
        if c == 0xC2:
            return False
        if c == 0xC3:
            return True
        if c in (0xC4, 0xC5, 0xC6):
            return self.take(self.u({0xC4: 1, 0xC5: 2, 0xC6: 4}[c]))
        if c in (0xC7, 0xC8, 0xC9):
            n = self.u({0xC7: 1, 0xC8: 2, 0xC9: 4}[c])
            code = self.s(1)
            return Ext(code, self.take(n))
        if c == 0xCA:
            return struct.unpack(">f", self.take(4))[0]
        if c == 0xCB:
            return struct.unpack(">d", self.take(8))[0]
        if 0xCC <= c <= 0xCF:
            return self.u(1 << (c - 0xCC))
        if 0xD0 <= c <= 0xD3:
            return self.s(1 << (c - 0xD0))
        if 0xD4 <= c <= 0xD8:
            code = self.s(1)
            return Ext(code, self.take(1 << (c - 0xD4)))
        if c in (0xD9, 0xDA, 0xDB):
            return Str(self.take(self.u({0xD9: 1, 0xDA: 2, 0xDB: 4}[c])))
        if c in (0xDC, 0xDD):
            return self._arr(self.u(2 if c == 0xDC else 4), depth)
        if c in (0xDE, 0xDF):
            return self._map(self.u(2 if c == 0xDE else 4), depth)
        raise AssertionError(c)

    def _arr(self, n, depth):
        # An empty array counts as a level (PROTOCOL.md, Limits).
        if depth > MAX_DEPTH:
            raise Malformed("nested deeper than 16")
        if n > self.left():
            raise Malformed("array count over the bytes left")
        return [self.value(depth + 1) for _ in range(n)]

    def _map(self, n, depth):
        if depth > MAX_DEPTH:
            raise Malformed("nested deeper than 16")
        if 2 * n > self.left():
            raise Malformed("map count over the bytes left")
        items = []
        for _ in range(n):
            k = self.value(depth + 1)
            items.append((k, self.value(depth + 1)))
        return MapItems(items)


class MapItems(list):
    """A decoded map, as its (key, value) pairs in order (keys may be of any type)."""

    def get(self, key, default=None):
        if isinstance(key, str):
            key = key.encode()
        for k, v in self:
            if isinstance(k, Str) and k == key:
                return v
        return default

    def keys(self):
        return [k for k, _ in self]


def unpack(body):
    """Decodes exactly one value that fills body (trailing bytes are malformed)."""
    r = Reader(body)
    v = r.value()
    if r.left():
        raise Malformed("trailing bytes")
    return v


def is_uint(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


# --- replies --------------------------------------------------------------------------------

class Reply:
    def __init__(self, request_id, status, result):
        self.request_id, self.status, self.result = request_id, status, result

    @property
    def name(self):
        return STATUS.get(self.status, "UNKNOWN(%d)" % self.status)

    def __repr__(self):
        return "Reply(id=%d, %s, %r)" % (self.request_id, self.name, self.result)


def parse_reply(body):
    """A reply body, checked as PROTOCOL.md, "Requests and replies", says."""
    v = unpack(body)
    if not isinstance(v, list) or len(v) != 3:
        raise Malformed("reply is not a 3-element array")
    rid, st, res = v
    if not is_uint(rid) or not is_uint(st) or st >= 1 << 32:
        raise Malformed("reply id or status not a uint below 2^32")
    if st == 1 and res is not None:
        raise Malformed("NOT_FOUND with a result")
    if st not in (0, 1) and not isinstance(res, Str):
        raise Malformed("error result is not a str")
    return Reply(rid, st, res)


# --- sealed connections (PROTOCOL.md, "Sealed connections") ----------------------------------

def hkdf_sha256(salt, ikm, info, length):
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    okm, t, i = b"", b"", 1
    while len(okm) < length:
        t = hmac.new(prk, t + info + bytes([i]), hashlib.sha256).digest()
        okm += t
        i += 1
    return okm[:length]


def secret_from_file(path):
    b = open(path, "rb").read()
    if b.endswith(b"\r\n"):
        return b[:-2]
    if b.endswith(b"\n"):
        return b[:-1]
    return b


def psk_of(secret):
    return hmac.new(b"sessd-psk-v1", secret, hashlib.sha256).digest()


def client_proof(psk, c_pk):
    return hmac.new(psk, b"sessd-kx-v1 client" + c_pk, hashlib.sha256).digest()


def derive(psk, shared, c_pk, s_pk):
    okm = hkdf_sha256(psk, shared, b"sessd-kx-v1 keys" + c_pk + s_pk, 96)
    key_c2s, key_s2c, key_confirm = okm[0:32], okm[32:64], okm[64:96]
    proof = hmac.new(key_confirm, b"sessd-kx-v1 server" + c_pk + s_pk, hashlib.sha256).digest()
    return key_c2s, key_s2c, key_confirm, proof


def x25519(sk, pk):
    from nacl.bindings import crypto_scalarmult
    return crypto_scalarmult(sk, pk)


def x25519_base(sk):
    from nacl.bindings import crypto_scalarmult_base
    return crypto_scalarmult_base(sk)


def nonce(n):
    return b"\0\0\0\0" + struct.pack("<Q", n)


def seal_record(key, n, plain):
    from nacl.bindings import crypto_aead_chacha20poly1305_ietf_encrypt as enc
    if not 1 <= len(plain) <= 65536:
        raise ValueError("a record carries 1 to 65536 bytes")
    hdr = struct.pack(">I", len(plain) + 16)
    return hdr + enc(plain, hdr, nonce(n), key)


def open_record(key, n, hdr, sealed):
    from nacl.bindings import crypto_aead_chacha20poly1305_ietf_decrypt as dec
    return dec(sealed, hdr, nonce(n), key)


# --- a connection -------------------------------------------------------------------------

class Closed(Exception):
    """The stream ended."""


class Conn:
    """One connection, plain or sealed. Frames go out whole; replies are read by position."""

    def __init__(self, addr, timeout=10.0):
        if isinstance(addr, str) and addr.startswith("unix:"):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            self.sock.connect(addr[5:])
        else:
            host, port = addr
            self.sock = socket.create_connection((host, port), timeout=timeout)
        self.max_frame = None      # unknown until the HELLO reply
        self.max_data = None
        self.hello = None
        self.sealed = False
        self.inbuf = b""           # plaintext bytes of the frame stream read so far
        self.rawbuf = b""          # sealed: bytes of records not opened yet
        self.next_id = 1

    # --- bytes on the wire
    def _recv_raw(self):
        b = self.sock.recv(65536)
        if not b:
            raise Closed("end of stream")
        return b

    def _fill(self, n):
        """Makes self.inbuf hold at least n bytes of the (plaintext) frame stream."""
        while len(self.inbuf) < n:
            if not self.sealed:
                self.inbuf += self._recv_raw()
                continue
            while len(self.rawbuf) < 4:
                self.rawbuf += self._recv_raw()
            ln = struct.unpack(">I", self.rawbuf[:4])[0]
            if not 17 <= ln <= 65552:
                raise Malformed("record length %d" % ln)
            while len(self.rawbuf) < 4 + ln:
                self.rawbuf += self._recv_raw()
            plain = open_record(self.key_s2c, self.n_in, self.rawbuf[:4], self.rawbuf[4:4 + ln])
            self.n_in += 1
            self.rawbuf = self.rawbuf[4 + ln:]
            self.inbuf += plain

    def send_bytes(self, b):
        """Sends the frame stream bytes b, sealed into records when the connection is."""
        if self.sealed:
            out = b""
            for i in range(0, len(b), 65536):
                out += seal_record(self.key_c2s, self.n_out, b[i:i + 65536])
                self.n_out += 1
            b = out
        self.sock.sendall(b)

    def send_body(self, body):
        self.send_bytes(struct.pack(">I", len(body)) + body)

    def limit(self):
        return self.max_frame if self.max_frame is not None else PRE_HELLO_LIMIT

    def read_body(self):
        self._fill(4)
        ln = struct.unpack(">I", self.inbuf[:4])[0]
        if ln == 0 or ln > self.limit():
            raise Malformed("reply length %d (limit %d)" % (ln, self.limit()))
        self._fill(4 + ln)
        body, self.inbuf = self.inbuf[4:4 + ln], self.inbuf[4 + ln:]
        return body

    def read_reply(self):
        return parse_reply(self.read_body())

    def request(self, op, *args, rid=None):
        """Encodes [op, rid, args...], checks it against max_frame, and sends it."""
        if rid is None:
            rid = self.next_id
            self.next_id += 1
        body = pack([OP[op] if isinstance(op, str) else op, rid] + list(args))
        if len(body) > self.limit():
            raise ValueError("request of %d bytes over max_frame %d" % (len(body), self.limit()))
        self.send_body(body)
        return rid

    def call(self, op, *args):
        rid = self.request(op, *args)
        r = self.read_reply()
        if r.request_id != rid and not (r.request_id == 0 and r.name in CLOSING):
            raise Malformed("reply id %d for request %d" % (r.request_id, rid))
        return r

    def read_to_end(self, timeout=3.0):
        """Reads what is left until the server closes; returns it (plaintext if sealed)."""
        self.sock.settimeout(timeout)
        try:
            while True:
                self.rawbuf += self._recv_raw() if self.sealed else b""
                if not self.sealed:
                    self.inbuf += self._recv_raw()
        except Closed:
            return True
        except (ConnectionResetError, socket.timeout):
            return False

    # --- HELLO
    def _take_hello(self, r):
        if r.name != "OK":
            return r
        m = r.result
        if not isinstance(m, MapItems):
            raise Malformed("HELLO result is not a map")
        mf = m.get("max_frame")
        if not is_uint(mf) or mf < 4096:
            raise Malformed("max_frame %r" % (mf,))
        self.max_frame = mf
        md = m.get("max_data")
        self.max_data = md if md is not None else mf - 16
        self.hello = m
        return r

    def hello_plain(self, auth=None, name="spec-65", version=1):
        ident = "%d.%s" % (os.getpid(), os.urandom(4).hex())
        cname = Str(name.encode() + b"\0" + ident.encode()) if name is not None else Str(b"")
        return self._take_hello(self.call("HELLO", version, cname, auth))

    def hello_sealed(self, secret, name="spec-65", c_sk=None, send_extra=None):
        """The key exchange of steps 1-4; returns the HELLO reply (and seals the connection)."""
        psk = psk_of(secret)
        c_sk = c_sk or os.urandom(32)
        c_pk = x25519_base(c_sk)
        auth = {"kx": c_pk, "proof": client_proof(psk, c_pk)}
        self.last_hello_body = pack([1, self.next_id, 1, Str(name.encode()), auth])
        r = self.call("HELLO", 1, Str(name.encode()), auth)
        if r.name != "OK":
            return r
        kx = r.result.get("kx")
        if r.result.get("auth") is not True or not isinstance(kx, MapItems):
            raise Malformed("sealed HELLO answered without auth true and kx")
        s_pk, s_proof = kx.get("key"), kx.get("proof")
        if not (isinstance(s_pk, bytes) and not isinstance(s_pk, Str) and len(s_pk) == 32):
            raise Malformed("kx key")
        shared = x25519(c_sk, s_pk)
        if shared == b"\0" * 32:
            raise Malformed("all-zero shared")
        self.key_c2s, self.key_s2c, _, proof = derive(psk, shared, c_pk, s_pk)
        if not hmac.compare_digest(proof, s_proof):
            raise Malformed("server proof wrong")
        self.s_pk = s_pk
        self.sealed = True
        self.n_in = self.n_out = 0
        # Bytes already read past the HELLO reply are records.
        self.rawbuf, self.inbuf = self.inbuf, b""
        return self._take_hello(r)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def tag(data):
    """The tag of session data: BLAKE2b-512 of the bytes, cut to 16."""
    return hashlib.blake2b(data, digest_size=64).digest()[:16]
