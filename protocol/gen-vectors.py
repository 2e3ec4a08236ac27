#!/usr/bin/env python3
"""Write protocol/vectors.json: the wire test vectors (PROTOCOL.md, "Test vectors").

The MessagePack below is written by hand, independently of the C codec, so the C and Node
codecs are checked against a third opinion. Run from anywhere:
    python3 protocol/gen-vectors.py > protocol/vectors.json
"""
import hashlib
import json
import struct

SAFE = 2**53 - 1  # above this, JSON numbers lose precision in JavaScript


# ---- a minimal MessagePack writer, shortest forms (what msgpack-c's packer writes) ----
def nil():
    return b"\xc0"


def u(v):
    if v < 0x80:
        return bytes([v])
    if v < 0x100:
        return b"\xcc" + struct.pack(">B", v)
    if v < 0x10000:
        return b"\xcd" + struct.pack(">H", v)
    if v < 0x100000000:
        return b"\xce" + struct.pack(">I", v)
    return b"\xcf" + struct.pack(">Q", v)


def s(x):
    if isinstance(x, str):
        x = x.encode()
    n = len(x)
    if n < 32:
        return bytes([0xA0 | n]) + x
    if n < 0x100:
        return b"\xd9" + struct.pack(">B", n) + x
    if n < 0x10000:
        return b"\xda" + struct.pack(">H", n) + x
    return b"\xdb" + struct.pack(">I", n) + x


def b(x):
    n = len(x)
    if n < 0x100:
        return b"\xc4" + struct.pack(">B", n) + x
    if n < 0x10000:
        return b"\xc5" + struct.pack(">H", n) + x
    return b"\xc6" + struct.pack(">I", n) + x


def arr(*items):
    n = len(items)
    if n < 16:
        h = bytes([0x90 | n])
    elif n < 0x10000:
        h = b"\xdc" + struct.pack(">H", n)
    else:
        h = b"\xdd" + struct.pack(">I", n)
    return h + b"".join(items)


def mp_map(*pairs):
    n = len(pairs)
    h = bytes([0x80 | n]) if n < 16 else b"\xde" + struct.pack(">H", n)
    return h + b"".join(k + v for k, v in pairs)


def frame(body):
    return struct.pack(">I", len(body)) + body


def num(v):
    return str(v) if v > SAFE else v


vectors = []


def req(name, body, fields, canonical=True, **extra):
    f = dict(fields)
    for k in ("request_id", "cursor"):
        if k in f:
            f[k] = num(f[k])
    v = {"name": name, "kind": "request", "hex": frame(body).hex(), "request": f}
    if not canonical:
        v["canonical"] = False
    v.update(extra)
    vectors.append(v)


def tag(data):
    """SET_IF's expect for ${data}: the first 16 bytes of its unkeyed BLAKE2b-512."""
    return hashlib.blake2b(data, digest_size=64).digest()[:16]


def rep(name, rid, status, result, message=None):
    body = arr(u(rid), u(status), result)
    r = {"request_id": num(rid), "status": status, "result_hex": result.hex()}
    if message is not None:
        r["message"] = message
    vectors.append({"name": name, "kind": "reply", "hex": frame(body).hex(), "reply": r})


def bad(name, body, error="BAD_REQUEST", kind="request", raw=None, **extra):
    v = {"name": name, "kind": kind, "hex": (raw if raw is not None else frame(body)).hex(),
         "error": error}
    for k, x in extra.items():
        v[k] = num(x) if k == "request_id" else x
    vectors.append(v)


HELLO, PING, GET, SET, TOUCH, DESTROY, SET_IF = 0x01, 0x02, 0x10, 0x11, 0x12, 0x13, 0x14
PUSH, POP, PUSH_EXISTING, COUNT, LIST, CLEAR, STATS = 0x20, 0x21, 0x22, 0x30, 0x31, 0x32, 0x33
NAMESPACES = 0x34
TTL, LOAD, TOUCH_IF = 0x15, 0x16, 0x17
DESTROY_IF_FLASH = 0x23
RETIRE = 0x03
RETIRE_KEY = bytes(range(0x40, 0x60))  # a server's s_pk of some sealed connection: 32 bytes
MAXTTL = 316224000000
U64MAX = 2**64 - 1
GEN_ID = "q1NwYh3YfP0kO9t0pT2oF0l3b9o3Qy9w0x3bQn6jVZk"  # 43 characters, as sessd_id_new makes
DATA = b'{"cookie":{"path":"/","httpOnly":true},"user":42}'

# ---------------- valid requests ----------------
req("hello", arr(u(HELLO), u(1), u(1), s("my-app"), nil()),
    {"op": HELLO, "request_id": 1, "version": 1, "client_name": "my-app", "auth_hex": "c0"})
req("hello empty client name, version 2 (the server answers BAD_VERSION)",
    arr(u(HELLO), u(0), u(2), s(""), nil()),
    {"op": HELLO, "request_id": 0, "version": 2, "client_name": "", "auth_hex": "c0"})
req("hello with a non-nil auth value kept raw (the server answers AUTH_FAILED)",
    arr(u(HELLO), u(3), u(1), s("x"), mp_map((s("k"), b(b"\x01\x02")))),
    {"op": HELLO, "request_id": 3, "version": 1, "client_name": "x",
     "auth_hex": mp_map((s("k"), b(b"\x01\x02"))).hex()})


def nest(levels):
    """${levels} arrays, each the only element of the one outside it; the innermost is empty."""
    v = arr()
    for _ in range(levels - 1):
        v = arr(v)
    return v


# The request array is level 1, so an argument may nest 15 more levels (PROTOCOL.md, "Limits").
deep15 = nest(15)
req("hello whose auth nests to exactly 16 levels with the request array (the server answers "
    "AUTH_FAILED)",
    arr(u(HELLO), u(4), u(1), s("deep"), deep15),
    {"op": HELLO, "request_id": 4, "version": 1, "client_name": "deep",
     "auth_hex": deep15.hex()})
req("ping", arr(u(PING), u(5)), {"op": PING, "request_id": 5})
req("ping request id 0", arr(u(PING), u(0)), {"op": PING, "request_id": 0})
req("ping request id uint8", arr(u(PING), u(200)), {"op": PING, "request_id": 200})
req("ping request id uint16", arr(u(PING), u(0x1234)), {"op": PING, "request_id": 0x1234})
req("ping request id uint32", arr(u(PING), u(0x89ABCDEF)), {"op": PING, "request_id": 0x89ABCDEF})
req("ping request id 2^32 (uint64)", arr(u(PING), u(2**32)), {"op": PING, "request_id": 2**32})
req("ping request id 2^53 (a decimal string in JSON)", arr(u(PING), u(2**53)),
    {"op": PING, "request_id": 2**53})
req("ping request id 2^64-1", arr(u(PING), u(U64MAX)), {"op": PING, "request_id": U64MAX})
req("ping with a payload (answered with it)", arr(u(PING), u(6), b(DATA)),
    {"op": PING, "request_id": 6, "ping_payload": True, "data_hex": DATA.hex()})
req("ping with an empty payload", arr(u(PING), u(7), b(b"")),
    {"op": PING, "request_id": 7, "ping_payload": True, "data_hex": ""})
req("ping with a str payload (answered as bin)", arr(u(PING), u(8), s("abc")),
    {"op": PING, "request_id": 8, "ping_payload": True, "data_hex": b"abc".hex()},
    canonical=False)
req("get default namespace", arr(u(GET), u(7), nil(), s("abc")),
    {"op": GET, "request_id": 7, "ns": None, "id": "abc"})
req("get named namespace, bin id", arr(u(GET), u(8), s("app1"), b(b"abc")),
    {"op": GET, "request_id": 8, "ns": "app1", "id_hex": b"abc".hex()})
req("get generated id, big request id", arr(u(GET), u(U64MAX - 1), nil(), s(GEN_ID)),
    {"op": GET, "request_id": U64MAX - 1, "ns": None, "id": GEN_ID})
req("get binary id with zero bytes", arr(u(GET), u(9), nil(), b(b"\x00\xff\x10")),
    {"op": GET, "request_id": 9, "ns": None, "id_hex": "00ff10"})
req("get longest id (128, str8) and namespace (64, str8)",
    arr(u(GET), u(10), s("n" * 64), s("i" * 128)),
    {"op": GET, "request_id": 10, "ns": "n" * 64, "id": "i" * 128})
req("get one-byte id and namespace", arr(u(GET), u(11), s("n"), s("i")),
    {"op": GET, "request_id": 11, "ns": "n", "id": "i"})
req("set default namespace", arr(u(SET), u(12), nil(), s("abc"), b(DATA), u(86400000)),
    {"op": SET, "request_id": 12, "ns": None, "id": "abc", "data_hex": DATA.hex(),
     "ttl_ms": 86400000})
req("set named namespace, bin id, max ttl (uint64)",
    arr(u(SET), u(13), s("shop"), b(b"\x01\x02\x03"), b(b"\x00"), u(MAXTTL)),
    {"op": SET, "request_id": 13, "ns": "shop", "id_hex": "010203", "data_hex": "00",
     "ttl_ms": MAXTTL})
req("set empty data, ttl 1", arr(u(SET), u(14), nil(), s(GEN_ID), b(b""), u(1)),
    {"op": SET, "request_id": 14, "ns": None, "id": GEN_ID, "data_hex": "", "ttl_ms": 1})
big = bytes(range(256)) + bytes(range(44))
req("set 300 bytes of data (bin16), ttl uint16",
    arr(u(SET), u(15), nil(), s("abc"), b(big), u(60000)),
    {"op": SET, "request_id": 15, "ns": None, "id": "abc", "data_hex": big.hex(),
     "ttl_ms": 60000})
DATA2 = b'{"cookie":{"path":"/","httpOnly":true},"user":42,"cart":[7]}'
req("set_if default namespace, over DATA", arr(u(SET_IF), u(40), nil(), s("abc"), b(DATA2),
                                             u(86400000), b(tag(DATA))),
    {"op": SET_IF, "request_id": 40, "ns": None, "id": "abc", "data_hex": DATA2.hex(),
     "ttl_ms": 86400000, "expect_hex": tag(DATA).hex()}, expect_tag_of_hex=DATA.hex())
req("set_if named namespace, bin id, empty data over empty data",
    arr(u(SET_IF), u(41), s("shop"), b(b"\x01\x02\x03"), b(b""), u(1), b(tag(b""))),
    {"op": SET_IF, "request_id": 41, "ns": "shop", "id_hex": "010203", "data_hex": "",
     "ttl_ms": 1, "expect_hex": tag(b"").hex()}, expect_tag_of_hex="")
req("touch", arr(u(TOUCH), u(16), nil(), s("abc"), u(3600000)),
    {"op": TOUCH, "request_id": 16, "ns": None, "id": "abc", "ttl_ms": 3600000})
req("touch named, ttl 127 (fixint)", arr(u(TOUCH), u(17), s("app"), b(b"abc"), u(127)),
    {"op": TOUCH, "request_id": 17, "ns": "app", "id_hex": b"abc".hex(), "ttl_ms": 127})
req("touch_if default namespace, over DATA",
    arr(u(TOUCH_IF), u(50), nil(), s("abc"), u(2592000000), b(tag(DATA))),
    {"op": TOUCH_IF, "request_id": 50, "ns": None, "id": "abc", "ttl_ms": 2592000000,
     "expect_hex": tag(DATA).hex()}, expect_tag_of_hex=DATA.hex())
req("touch_if named namespace, bin id, over empty data, ttl 1",
    arr(u(TOUCH_IF), u(51), s("shop"), b(b"\x01\x02\x03"), u(1), b(tag(b""))),
    {"op": TOUCH_IF, "request_id": 51, "ns": "shop", "id_hex": "010203", "ttl_ms": 1,
     "expect_hex": tag(b"").hex()}, expect_tag_of_hex="")
req("destroy", arr(u(DESTROY), u(18), nil(), s("abc")),
    {"op": DESTROY, "request_id": 18, "ns": None, "id": "abc"})
req("destroy named bin id", arr(u(DESTROY), u(19), s("app"), b(b"\xde\xad")),
    {"op": DESTROY, "request_id": 19, "ns": "app", "id_hex": "dead"})
req("ttl", arr(u(TTL), u(45), nil(), s("abc")),
    {"op": TTL, "request_id": 45, "ns": None, "id": "abc"})
req("ttl named bin id", arr(u(TTL), u(46), s("app"), b(b"\xde\xad")),
    {"op": TTL, "request_id": 46, "ns": "app", "id_hex": "dead"})
req("load", arr(u(LOAD), u(47), nil(), s("abc")),
    {"op": LOAD, "request_id": 47, "ns": None, "id": "abc"})
req("load named bin id", arr(u(LOAD), u(48), s("app"), b(b"\xde\xad")),
    {"op": LOAD, "request_id": 48, "ns": "app", "id_hex": "dead"})
req("flash push str message",
    arr(u(PUSH), u(20), nil(), s("abc"), s("info"), s("Saved!"), u(60000)),
    {"op": PUSH, "request_id": 20, "ns": None, "id": "abc", "type": "info", "msg": "Saved!",
     "ttl_ms": 60000})
req("flash push bin message, named namespace",
    arr(u(PUSH), u(21), s("app"), b(b"abc"), s("error"), b(b"\x00\x01"), u(1000)),
    {"op": PUSH, "request_id": 21, "ns": "app", "id_hex": b"abc".hex(), "type": "error",
     "msg_hex": "0001", "ttl_ms": 1000})
req("flash push empty str message", arr(u(PUSH), u(22), nil(), s("abc"), s("t"), s(""), u(5)),
    {"op": PUSH, "request_id": 22, "ns": None, "id": "abc", "type": "t", "msg": "",
     "ttl_ms": 5})
req("flash push empty bin message", arr(u(PUSH), u(23), nil(), s("abc"), s("t"), b(b""), u(5)),
    {"op": PUSH, "request_id": 23, "ns": None, "id": "abc", "type": "t", "msg_hex": "",
     "ttl_ms": 5})
req("flash push existing str message",
    arr(u(PUSH_EXISTING), u(43), nil(), s("abc"), s("info"), s("Saved!"), u(60000)),
    {"op": PUSH_EXISTING, "request_id": 43, "ns": None, "id": "abc", "type": "info",
     "msg": "Saved!", "ttl_ms": 60000})
req("flash push existing bin message, named namespace, bin id, max ttl",
    arr(u(PUSH_EXISTING), u(44), s("app"), b(b"\x01\x02"), s("error"), b(b"\x00\x01"),
        u(MAXTTL)),
    {"op": PUSH_EXISTING, "request_id": 44, "ns": "app", "id_hex": "0102", "type": "error",
     "msg_hex": "0001", "ttl_ms": MAXTTL})
req("flash push existing empty str message, ttl 1",
    arr(u(PUSH_EXISTING), u(45), nil(), s(GEN_ID), s("t"), s(""), u(1)),
    {"op": PUSH_EXISTING, "request_id": 45, "ns": None, "id": GEN_ID, "type": "t", "msg": "",
     "ttl_ms": 1})
req("destroy_if_flash, bin token (PROTOCOL.md's example)",
    arr(u(DESTROY_IF_FLASH), u(52), s("locks"), s("k"), s("move"), b(bytes(range(16)))),
    {"op": DESTROY_IF_FLASH, "request_id": 52, "ns": "locks", "id": "k", "type": "move",
     "msg_hex": bytes(range(16)).hex()})
req("destroy_if_flash default namespace, empty str message",
    arr(u(DESTROY_IF_FLASH), u(53), nil(), s("abc"), s("t"), s("")),
    {"op": DESTROY_IF_FLASH, "request_id": 53, "ns": None, "id": "abc", "type": "t",
     "msg": ""})
req("flash pop one type", arr(u(POP), u(24), nil(), s("abc"), s("info")),
    {"op": POP, "request_id": 24, "ns": None, "id": "abc", "type": "info"})
req("flash pop every type (nil)", arr(u(POP), u(25), s("app"), s("abc"), nil()),
    {"op": POP, "request_id": 25, "ns": "app", "id": "abc", "type": None})
req("count default namespace", arr(u(COUNT), u(26), nil()),
    {"op": COUNT, "request_id": 26, "ns": None})
req("count named", arr(u(COUNT), u(27), s("app")), {"op": COUNT, "request_id": 27, "ns": "app"})
req("list first page", arr(u(LIST), u(28), nil(), u(0), u(100)),
    {"op": LIST, "request_id": 28, "ns": None, "cursor": 0, "limit": 100})
req("list big cursor, limit 1000", arr(u(LIST), u(29), s("app"), u(2**63 + 5), u(1000)),
    {"op": LIST, "request_id": 29, "ns": "app", "cursor": 2**63 + 5, "limit": 1000})
req("list limit 1", arr(u(LIST), u(30), nil(), u(77), u(1)),
    {"op": LIST, "request_id": 30, "ns": None, "cursor": 77, "limit": 1})
req("clear", arr(u(CLEAR), u(31), s("app")), {"op": CLEAR, "request_id": 31, "ns": "app"})
req("clear default", arr(u(CLEAR), u(32), nil()), {"op": CLEAR, "request_id": 32, "ns": None})
req("stats whole server (nil)", arr(u(STATS), u(33), nil()),
    {"op": STATS, "request_id": 33, "ns": None})
req("stats of a namespace", arr(u(STATS), u(34), s("default")),
    {"op": STATS, "request_id": 34, "ns": "default"})
req("namespaces first page", arr(u(NAMESPACES), u(44), u(0), u(1000)),
    {"op": NAMESPACES, "request_id": 44, "cursor": 0, "limit": 1000})
req("namespaces big cursor, limit 10", arr(u(NAMESPACES), u(45), u(2**63 + 9), u(10)),
    {"op": NAMESPACES, "request_id": 45, "cursor": 2**63 + 9, "limit": 10})

# Decode-only: encodings a decoder must accept but a shortest-form encoder never writes.
req("get with opcode as uint8, request id as uint64, ns as str8",
    arr(b"\xcc\x10", b"\xcf" + struct.pack(">Q", 7), b"\xd9\x03app", s("abc")),
    {"op": GET, "request_id": 7, "ns": "app", "id": "abc"}, canonical=False)
req("touch with non-negative int8/int16/int32/int64 values",
    arr(b"\xd0\x12", b"\xd1\x01\x00", b"\xda\x00\x03app", b"\xc6\x00\x00\x00\x03abc",
        b"\xd3" + struct.pack(">q", 1000)),
    {"op": TOUCH, "request_id": 256, "ns": "app", "id_hex": b"abc".hex(), "ttl_ms": 1000},
    canonical=False)
req("set with data as str (decodes as the same bytes)",
    arr(u(SET), u(35), nil(), s("abc"), s("hello"), b"\xd2\x00\x00\x03\xe8"),
    {"op": SET, "request_id": 35, "ns": None, "id": "abc", "data_hex": b"hello".hex(),
     "ttl_ms": 1000}, canonical=False)
req("set_if with expect as bin16 and data as str",
    arr(u(SET_IF), u(42), nil(), s("abc"), s("hello"), u(1000),
        b"\xc5\x00\x10" + tag(b"hi")),
    {"op": SET_IF, "request_id": 42, "ns": None, "id": "abc", "data_hex": b"hello".hex(),
     "ttl_ms": 1000, "expect_hex": tag(b"hi").hex()}, canonical=False,
    expect_tag_of_hex=b"hi".hex())
req("namespaces limit 0 is clamped to 1", arr(u(NAMESPACES), u(46), u(0), u(0)),
    {"op": NAMESPACES, "request_id": 46, "cursor": 0, "limit": 1}, canonical=False)
req("namespaces limit 2^64-1 is clamped to 1000", arr(u(NAMESPACES), u(47), u(3), u(U64MAX)),
    {"op": NAMESPACES, "request_id": 47, "cursor": 3, "limit": 1000}, canonical=False)
req("list limit 0 is clamped to 1", arr(u(LIST), u(36), nil(), u(0), u(0)),
    {"op": LIST, "request_id": 36, "ns": None, "cursor": 0, "limit": 1}, canonical=False)
req("list limit 5000 is clamped to 1000", arr(u(LIST), u(37), nil(), u(0), u(5000)),
    {"op": LIST, "request_id": 37, "ns": None, "cursor": 0, "limit": 1000}, canonical=False)
req("list limit 2^64-1 is clamped to 1000", arr(u(LIST), u(38), nil(), u(5), u(U64MAX)),
    {"op": LIST, "request_id": 38, "ns": None, "cursor": 5, "limit": 1000}, canonical=False)
req("retire a sealed connection by its server key", arr(u(RETIRE), u(60), b(RETIRE_KEY)),
    {"op": RETIRE, "request_id": 60, "key_hex": RETIRE_KEY.hex()})
req("request array as array16", b"\xdc\x00\x02" + u(PING) + u(39),
    {"op": PING, "request_id": 39}, canonical=False)

# ---------------- valid replies ----------------
rep("ok nil (ping, set)", 5, 0, nil())
rep("ok bin (get)", 7, 0, b(DATA))
rep("ok bin (ping with a payload)", 6, 0, b(DATA))
rep("ok uint (count)", 26, 0, u(3))
rep("ok uint64 (stats value)", 26, 0, u(2**40))
rep("ok uint32 (ttl: an hour less 130 ms)", 45, 0, u(3599870))
rep("ok load: the data and 2 flash messages queued", 47, 0, arr(b(DATA), u(2)))
rep("ok list page", 28, 0, arr(u(0), arr(arr(b(b"abc"), u(59000)), arr(b(b"x"), u(1)))))
rep("ok namespaces page, the last", 44, 0,
    arr(u(0), arr(arr(s("shop"), u(3)), arr(s("default"), u(1)))))
rep("ok namespaces page, more to come", 45, 0,
    arr(u(2**63 + 77), arr(arr(s("app"), u(2**40)))))
rep("ok namespaces page, empty with a cursor", 45, 0, arr(u(12345), arr()))
rep("ok list page, array32 headers (as written by a producer that counts afterwards)", 28, 0,
    b"\xdd\x00\x00\x00\x02" + u(9) + b"\xdd\x00\x00\x00\x00")
rep("ok true (retire: that connection was open and is closed)", 60, 0, b"\xc3")
rep("ok false (retire: no such connection is open)", 60, 0, b"\xc2")
rep("ok flash pop one type", 24, 0, arr(s("Saved!"), b(b"\x00\x01")))
rep("ok flash pop every type", 25, 0,
    mp_map((s("info"), arr(s("a"), s("b"))), (s("error"), arr(s("c")))))
rep("ok hello map", 1, 0, mp_map(
    (s("version"), u(1)), (s("server"), s("sessd 0.1.0")),
    (s("server_id"), s("0123456789abcdef0123456789abcdef")), (s("max_frame"), u(1048576)),
    (s("max_id"), u(128)), (s("max_namespace"), u(64)), (s("max_flash_type"), u(64)),
    (s("max_list"), u(1000)), (s("auth"), nil()), (s("admin"), b"\xc3")))
# What sessd sends today: max_data too (the reply above is an older server's).
rep("ok hello map with max_data", 1, 0, mp_map(
    (s("version"), u(1)), (s("server"), s("sessd 0.1.0")),
    (s("server_id"), s("0123456789abcdef0123456789abcdef")), (s("max_frame"), u(1048576)),
    (s("max_data"), u(1048560)), (s("max_id"), u(128)), (s("max_namespace"), u(64)),
    (s("max_flash_type"), u(64)), (s("max_list"), u(1000)), (s("auth"), nil()),
    (s("admin"), b"\xc3")))
rep("not found", 7, 1, nil())
rep("bad request with a message", 0, 2, s("id must be 1..128 bytes"), "id must be 1..128 bytes")
rep("unknown op with a message, big request id", U64MAX, 5, s("unknown opcode"),
    "unknown opcode")
rep("limit with a message", 20, 12, s("flash limit"), "flash limit")
CONFLICT_MSG = "the session's data changed since it was read; nothing changed"
rep("conflict (set_if) with a message", 40, 14, s(CONFLICT_MSG), CONFLICT_MSG)
rep("conflict (touch_if) with a message", 50, 14, s(CONFLICT_MSG), CONFLICT_MSG)
FORBIDDEN_MSG = "LIST needs the admin secret (--admin-auth-file)"
rep("forbidden (list without the admin secret) with a message", 41, 15, s(FORBIDDEN_MSG),
    FORBIDDEN_MSG)
rep("ok uint (flash push existing: the queue's length)", 43, 0, u(2))
rep("not found (flash push existing: no session with data)", 43, 1, nil())
rep("error with an empty message", 3, 10, s(""), "")

# ---------------- invalid ----------------
bad("zero-length frame", None, raw=b"\x00\x00\x00\x00")
bad("frame over max_frame (header only)", None, "TOO_LARGE", raw=b"\x00\x10\x00\x01",
    max_frame=1048576)
bad("frame over a small max_frame (header only)", None, "TOO_LARGE", raw=b"\x00\x00\x10\x01",
    max_frame=4096)
bad("huge declared frame (header only)", None, "TOO_LARGE", raw=b"\xff\xff\xff\xff",
    max_frame=1048576)
bad("body is nil, not an array", nil())
bad("body is a map", mp_map((u(PING), u(1))))
bad("empty array", arr())
bad("array with only an opcode", arr(u(PING)))
bad("reserved byte 0xc1 as the body", b"\xc1")
bad("reserved byte 0xc1 as the namespace", arr(u(GET), u(1), b"\xc1", s("abc")))
bad("reserved byte 0xc1 inside an unknown op's argument", arr(u(0x7F), u(1), arr(b"\xc1")))
bad("truncated: id str claims 3 bytes, 2 present", b"\x94" + u(GET) + u(1) + nil() + b"\xa3ab")
bad("truncated: array claims 4 elements, 3 present", b"\x94" + u(GET) + u(1) + nil())
bad("truncated: uint32 request id cut short", b"\x92\x02\xce\x00\x01")
bad("truncated: bin8 data cut short", b"\x95\x11\x01\xc0\xa1a\xc4\x05abc")
bad("trailing byte after ping", arr(u(PING), u(1)) + b"\xc0")
bad("trailing bytes after get", arr(u(GET), u(1), nil(), s("abc")) + b"\x00\x00")
bad("opcode is a str", arr(s("GET"), u(1), nil(), s("abc")))
bad("opcode is negative", arr(b"\xff", u(1)))
bad("opcode is a float", arr(b"\xca\x41\x80\x00\x00", u(1)))
bad("request id is negative", arr(u(PING), b"\xd0\xff"))
bad("request id is nil", arr(u(PING), nil()))
bad("request id is a bool", arr(u(PING), b"\xc3"))
bad("ns is bin", arr(u(GET), u(1), b(b"app"), s("abc")))
bad("ns is an integer", arr(u(GET), u(1), u(5), s("abc")))
bad("ns is empty", arr(u(GET), u(1), s(""), s("abc")))
bad("ns is 65 bytes", arr(u(GET), u(1), s("n" * 65), s("abc")))
bad("ns is an ext", arr(u(GET), u(1), b"\xd4\x01\x00", s("abc")))
bad("id is nil", arr(u(GET), u(1), nil(), nil()))
bad("id is an integer", arr(u(GET), u(1), nil(), u(42)))
bad("id is an array", arr(u(GET), u(1), nil(), arr(s("abc"))))
bad("id is empty", arr(u(GET), u(1), nil(), s("")))
bad("id is 129 bytes", arr(u(GET), u(1), nil(), s("i" * 129)))
bad("bin id is 129 bytes", arr(u(GET), u(1), nil(), b(b"i" * 129)))
bad("data is nil", arr(u(SET), u(1), nil(), s("abc"), nil(), u(1000)))
bad("data is an integer", arr(u(SET), u(1), nil(), s("abc"), u(1), u(1000)))
bad("ttl is a str", arr(u(SET), u(1), nil(), s("abc"), b(b"x"), s("1000")))
bad("ttl is a float", arr(u(TOUCH), u(1), nil(), s("abc"), b"\xcb" + struct.pack(">d", 1000.0)))
bad("ttl is nil", arr(u(TOUCH), u(1), nil(), s("abc"), nil()))
bad("ttl is negative fixint", arr(u(TOUCH), u(1), nil(), s("abc"), b"\xff"))
bad("ttl is negative int64", arr(u(SET), u(1), nil(), s("abc"), b(b"x"),
                                  b"\xd3" + struct.pack(">q", -1000)))
bad("ttl is 0", arr(u(SET), u(1), nil(), s("abc"), b(b"x"), u(0)))
bad("ttl is 10 years + 1 ms", arr(u(TOUCH), u(1), nil(), s("abc"), u(MAXTTL + 1)))
bad("ttl is 2^64-1", arr(u(PUSH), u(1), nil(), s("abc"), s("t"), s("m"), u(U64MAX)))
bad("flash type is bin", arr(u(PUSH), u(1), nil(), s("abc"), b(b"info"), s("m"), u(5)))
bad("flash type is nil in a push", arr(u(PUSH), u(1), nil(), s("abc"), nil(), s("m"), u(5)))
bad("flash type is empty", arr(u(POP), u(1), nil(), s("abc"), s("")))
bad("flash type is 65 bytes", arr(u(POP), u(1), nil(), s("abc"), s("t" * 65)))
bad("flash message is nil", arr(u(PUSH), u(1), nil(), s("abc"), s("t"), nil(), u(5)))
bad("flash push existing type is nil",
    arr(u(PUSH_EXISTING), u(1), nil(), s("abc"), nil(), s("m"), u(5)))
bad("flash push existing type is bin",
    arr(u(PUSH_EXISTING), u(1), nil(), s("abc"), b(b"info"), s("m"), u(5)))
bad("flash push existing type is 65 bytes",
    arr(u(PUSH_EXISTING), u(1), nil(), s("abc"), s("t" * 65), s("m"), u(5)))
bad("flash push existing message is nil",
    arr(u(PUSH_EXISTING), u(1), nil(), s("abc"), s("t"), nil(), u(5)))
bad("flash push existing message is an integer",
    arr(u(PUSH_EXISTING), u(1), nil(), s("abc"), s("t"), u(7), u(5)))
bad("flash push existing ttl is 0",
    arr(u(PUSH_EXISTING), u(1), nil(), s("abc"), s("t"), s("m"), u(0)))
bad("flash push existing ttl is 10 years + 1 ms",
    arr(u(PUSH_EXISTING), u(1), nil(), s("abc"), s("t"), s("m"), u(MAXTTL + 1)))
bad("flash push existing id is empty",
    arr(u(PUSH_EXISTING), u(1), nil(), s(""), s("t"), s("m"), u(5)))
bad("flash push existing without ttl",
    arr(u(PUSH_EXISTING), u(1), nil(), s("abc"), s("t"), s("m")))
bad("flash push existing with 6 arguments",
    arr(u(PUSH_EXISTING), u(1), nil(), s("abc"), s("t"), s("m"), u(5), u(5)))
bad("flash push existing with a trailing byte",
    arr(u(PUSH_EXISTING), u(1), nil(), s("abc"), s("t"), s("m"), u(5)) + b"\xc0")
bad("hello client name is 65 bytes", arr(u(HELLO), u(1), u(1), s("c" * 65), nil()))
bad("hello client name is bin", arr(u(HELLO), u(1), u(1), b(b"app"), nil()))
bad("hello version is negative", arr(u(HELLO), u(1), b"\xff", s("app"), nil()))
bad("list cursor is negative", arr(u(LIST), u(1), nil(), b"\xd0\x80", u(10)))
bad("list limit is a str", arr(u(LIST), u(1), nil(), u(0), s("10")))
bad("namespaces with a namespace (it takes none)", arr(u(NAMESPACES), u(1), nil(), u(0), u(10)))
bad("namespaces without a limit", arr(u(NAMESPACES), u(1), u(0)))
bad("namespaces cursor is a str", arr(u(NAMESPACES), u(1), s("0"), u(10)))
bad("namespaces limit is negative", arr(u(NAMESPACES), u(1), u(0), b"\xff"))
bad("stats ns is bin", arr(u(STATS), u(1), b(b"x")))
bad("get with 3 arguments", arr(u(GET), u(1), nil(), s("abc"), nil()))
bad("ttl with a ttl argument (it takes none)", arr(u(TTL), u(1), nil(), s("abc"), u(1000)))
bad("ttl without an id", arr(u(TTL), u(1), nil()))
bad("ttl with an empty id", arr(u(TTL), u(1), nil(), s("")))
bad("load with a type argument (it takes none)", arr(u(LOAD), u(1), nil(), s("abc"), nil()))
bad("load without an id", arr(u(LOAD), u(1), nil()))
bad("get with 1 argument", arr(u(GET), u(1), nil()))
bad("ping with a nil payload", arr(u(PING), u(1), nil()))
bad("ping with a uint payload", arr(u(PING), u(1), u(5)))
bad("ping with 2 arguments", arr(u(PING), u(1), b(b"x"), b(b"y")))
bad("hello without auth", arr(u(HELLO), u(1), u(1), s("app")))
bad("set with 5 arguments", arr(u(SET), u(1), nil(), s("a"), b(b"x"), u(5), u(5)))
bad("set_if without expect", arr(u(SET_IF), u(1), nil(), s("a"), b(b"x"), u(5)))
bad("set_if with 6 arguments",
    arr(u(SET_IF), u(1), nil(), s("a"), b(b"x"), u(5), b(tag(b"")), u(5)))
bad("retire key is 31 bytes", arr(u(RETIRE), u(1), b(RETIRE_KEY[:31])))
bad("retire key is 33 bytes", arr(u(RETIRE), u(1), b(RETIRE_KEY + b"\x00")))
bad("retire key is a str of 32 bytes", arr(u(RETIRE), u(1), s("k" * 32)))
bad("retire without its key", arr(u(RETIRE), u(1)))
bad("set_if expect is 15 bytes", arr(u(SET_IF), u(1), nil(), s("a"), b(b"x"), u(5),
                                     b(tag(b"")[:15])))
bad("set_if expect is 17 bytes", arr(u(SET_IF), u(1), nil(), s("a"), b(b"x"), u(5),
                                     b(tag(b"") + b"\x00")))
bad("set_if expect is the whole 64-byte hash",
    arr(u(SET_IF), u(1), nil(), s("a"), b(b"x"), u(5),
        b(hashlib.blake2b(b"", digest_size=64).digest())))
bad("set_if expect is empty", arr(u(SET_IF), u(1), nil(), s("a"), b(b"x"), u(5), b(b"")))
bad("set_if expect is a str of 16 bytes",
    arr(u(SET_IF), u(1), nil(), s("a"), b(b"x"), u(5), s("0123456789abcdef")))
bad("set_if expect is nil", arr(u(SET_IF), u(1), nil(), s("a"), b(b"x"), u(5), nil()))
bad("set_if ttl is 0", arr(u(SET_IF), u(1), nil(), s("a"), b(b"x"), u(0), b(tag(b"x"))))
bad("set_if data is nil", arr(u(SET_IF), u(1), nil(), s("a"), nil(), u(5), b(tag(b"x"))))
bad("destroy_if_flash without msg", arr(u(DESTROY_IF_FLASH), u(1), nil(), s("a"), s("t")))
bad("destroy_if_flash with a ttl (FLASH_PUSH's arguments)",
    arr(u(DESTROY_IF_FLASH), u(1), nil(), s("a"), s("t"), s("m"), u(5)))
bad("destroy_if_flash msg is nil", arr(u(DESTROY_IF_FLASH), u(1), nil(), s("a"), s("t"), nil()))
bad("touch_if without expect", arr(u(TOUCH_IF), u(1), nil(), s("a"), u(5)))
bad("touch_if with 5 arguments",
    arr(u(TOUCH_IF), u(1), nil(), s("a"), u(5), b(tag(b"")), u(5)))
bad("touch_if with data (SET_IF's arguments)",
    arr(u(TOUCH_IF), u(1), nil(), s("a"), b(b"x"), u(5), b(tag(b"x"))))
bad("touch_if expect is 15 bytes", arr(u(TOUCH_IF), u(1), nil(), s("a"), u(5),
                                       b(tag(b"")[:15])))
bad("touch_if expect is a str of 16 bytes",
    arr(u(TOUCH_IF), u(1), nil(), s("a"), u(5), s("0123456789abcdef")))
bad("touch_if expect is nil", arr(u(TOUCH_IF), u(1), nil(), s("a"), u(5), nil()))
bad("touch_if ttl is 0", arr(u(TOUCH_IF), u(1), nil(), s("a"), u(0), b(tag(b"x"))))
bad("touch_if ttl is 10 years + 1 ms",
    arr(u(TOUCH_IF), u(1), nil(), s("a"), u(MAXTTL + 1), b(tag(b"x"))))
deep16 = nest(16)
bad("nesting too deep: hello auth makes 17 levels", arr(u(HELLO), u(1), u(1), s("x"), deep16))
bad("nesting too deep: unknown op argument makes 17 levels", arr(u(0x7F), u(1), deep16))
bad("nesting too deep: maps", arr(u(0x7F), u(1), (b"\x81\xc0" * 16) + b"\xc0"))
bad("huge declared count: array32 of 1000000 as the body", b"\xdd\x00\x0f\x42\x40")
bad("huge declared count: array32 of 2^32-1 as the body", b"\xdd\xff\xff\xff\xff" + u(PING) + u(1))
bad("huge declared count: map32 of 2^32-1 in an unknown op",
    arr(u(0x7F), u(1), b"\xdf\xff\xff\xff\xff\xc0\xc0"))
bad("huge declared count: map16 of 65535 in hello auth",
    arr(u(HELLO), u(1), u(1), s("x"), b"\xde\xff\xff\xc0\xc0"))
bad("huge declared length: str32 id of 2^32-1 bytes",
    arr(u(GET), u(1), nil(), b"\xdb\xff\xff\xff\xff" + b"abc"))
bad("huge declared length: bin32 data of 1000000 bytes",
    arr(u(SET), u(1), nil(), s("a"), b"\xc6\x00\x0f\x42\x40" + b"x" * 4))
bad("huge declared length: ext32 in an unknown op",
    arr(u(0x7F), u(1), b"\xc9\xff\xff\xff\xff\x01"))
bad("unknown opcode 0x7f", arr(u(0x7F), u(9), s("x")), "UNKNOWN_OP", request_id=9)
bad("unknown opcode 0x40 without arguments", arr(u(0x40), u(10)), "UNKNOWN_OP", request_id=10)
bad("unknown opcode 0", arr(u(0), u(11)), "UNKNOWN_OP", request_id=11)
bad("unknown opcode 2^64-1, big request id", arr(u(U64MAX), u(U64MAX)), "UNKNOWN_OP",
    request_id=U64MAX)
bad("unknown opcode with 16 levels of nesting is still well formed",
    arr(u(0x7F), u(12), deep15), "UNKNOWN_OP", request_id=12)
bad("unknown opcode with a map, float, ext and bool arguments",
    arr(u(0x7F), u(13), mp_map((s("a"), b"\xcb" + struct.pack(">d", 1.5))), b"\xd4\x01\x02",
        b"\xc2"), "UNKNOWN_OP", request_id=13)
bad("unknown opcode with trailing bytes", arr(u(0x7F), u(14)) + b"\xc0")

bad("reply: only two elements", arr(u(1), u(0)), kind="reply")
bad("reply: status is negative", arr(u(1), b"\xff", nil()), kind="reply")
bad("reply: status over 2^32-1", arr(u(1), u(2**32), nil()), kind="reply")
bad("reply: not found with a non-nil result", arr(u(1), u(1), s("x")), kind="reply")
bad("reply: error status with a bin message", arr(u(1), u(2), b(b"x")), kind="reply")
bad("reply: error status with nil", arr(u(1), u(2), nil()), kind="reply")
bad("reply: trailing bytes", arr(u(1), u(0), nil()) + b"\xc0", kind="reply")
bad("reply: truncated result", arr(u(1), u(0), nil())[:-1] + b"\xc4\x05ab", kind="reply")
bad("reply: result nests 17 levels", arr(u(1), u(0), deep16), kind="reply")
rep("ok result nesting 16 levels with the reply array", 2, 0, deep15)
bad("reply: huge declared result array", arr(u(1), u(0), nil())[:-1] + b"\xdd\x00\x0f\x42\x40",
    kind="reply")
bad("reply: zero-length frame", None, kind="reply", raw=b"\x00\x00\x00\x00")

names = [v["name"] for v in vectors]
assert len(names) == len(set(names)), "vector names must be unique"
print("[")
print(",\n".join(json.dumps(v, ensure_ascii=True) for v in vectors))
print("]")
