#!/usr/bin/env python3
"""Write the seeds of fuzz_client's corpus: for each call, the bytes a good server sends back
(and a few it should not), in fuzz_client.c's input format. Standard library only.

Usage: gen-client-corpus.py DIR
"""
import os
import struct
import sys

# fuzz_client.c's CALL_* and BATCH_* numbers.
CALLS = ["ping", "get", "load", "ttl", "count", "clear", "flash_push", "flash_push_existing",
         "flash_pop", "flash_pop_all", "list", "namespaces", "stats", "stats_all", "set",
         "set_if", "touch", "touch_if", "destroy", "batch"]
BATCH = ["get", "set", "set_if", "touch", "destroy", "flash_push", "flash_push_existing",
         "flash_pop", "flash_pop_all", "ttl", "ping"]
CALL = {name: i for i, name in enumerate(CALLS)}
ITEM = {name: i for i, name in enumerate(BATCH)}
MAX_FRAME_1M = 3  # the low bits of byte 1: 4096, 8192, 65536, 1 MiB
RAW_HELLO = 0x80  # byte 1's high bit: the script is the HELLO's answer
SEALED = 0x40  # byte 1: a sealed connection
SERVER_ID = b"00112233445566778899aabbccddeeff"


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
    b = s.encode() if isinstance(s, str) else s
    assert len(b) < 32
    return bytes([0xa0 | len(b)]) + b


def mp_bin(b):
    assert len(b) < 256
    return b"\xc4" + bytes([len(b)]) + b


def mp_array(items):
    assert len(items) < 16
    return bytes([0x90 | len(items)]) + b"".join(items)


def mp_map(pairs):
    assert len(pairs) < 16
    return bytes([0x80 | len(pairs)]) + b"".join(k + v for k, v in pairs)


NIL = b"\xc0"


def frame(body):
    return struct.pack(">I", len(body)) + body


def reply(request_id, status, result):
    return frame(mp_array([mp_uint(request_id), mp_uint(status), result]))


# The result of each call's good reply.
GOOD = {
    "ping": NIL,
    "get": mp_bin(b"{\"user\":1}"),
    "load": mp_array([mp_bin(b"{}"), mp_uint(2)]),
    "ttl": mp_uint(3599870),
    "count": mp_uint(42),
    "clear": mp_uint(7),
    "flash_push": mp_uint(1),
    "flash_push_existing": mp_uint(2),
    "flash_pop": mp_array([mp_str("saved"), mp_bin(b"\x00raw")]),
    "flash_pop_all": mp_map([(mp_str("notice"), mp_array([mp_str("hi")])),
                             (mp_str("error"), mp_array([mp_str("no"), mp_str("again")]))]),
    "list": mp_array([mp_uint(9), mp_array([mp_array([mp_bin(b"abc"), mp_uint(1000)]),
                                            mp_array([mp_bin(b"d"), mp_uint(1)])])]),
    "namespaces": mp_array([mp_uint(0), mp_array([mp_array([mp_str("default"), mp_uint(3)]),
                                                  mp_array([mp_str("shop"), mp_uint(1)])])]),
    "stats": mp_map([(mp_str("sessions"), mp_uint(1)), (mp_str("bytes"), mp_uint(10)),
                     (mp_str("flashes"), mp_uint(0))]),
    "stats_all": mp_map([(mp_str("uptime_ms"), mp_uint(123456)),
                         (mp_str("version"), mp_str("0.1.0")),
                         (mp_str("max_frame"), mp_uint(1 << 20))]),
    "set": NIL, "set_if": NIL, "touch": NIL, "touch_if": NIL, "destroy": NIL,
}
ITEM_CALL = {"get": "get", "set": "set", "set_if": "set_if", "touch": "touch",
             "destroy": "destroy", "flash_push": "flash_push",
             "flash_push_existing": "flash_push_existing", "flash_pop": "flash_pop",
             "flash_pop_all": "flash_pop_all", "ttl": "ttl", "ping": "ping"}
GOODBYE = frame(mp_array([mp_uint(0), mp_uint(11), mp_str("shutting down")]))


def seed(call, script, max_frame=MAX_FRAME_1M):
    return bytes([CALL[call], max_frame]) + script


def batch_seed(items, script):
    return bytes([CALL["batch"], MAX_FRAME_1M, len(items) - 1]) + \
        bytes(ITEM[i] for i in items) + script


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    seeds = {}
    for call, result in GOOD.items():
        seeds[call] = seed(call, reply(2, 0, result))
    seeds["get-not-found"] = seed("get", reply(2, 1, NIL))
    seeds["get-server-error"] = seed("get", reply(2, 12, mp_str("limit\x1b[2J")))
    seeds["get-then-goodbye"] = seed("get", reply(2, 0, mp_bin(b"x")) + GOODBYE)
    seeds["get-goodbye-first"] = seed("get", GOODBYE)
    seeds["get-wrong-id"] = seed("get", reply(3, 0, mp_bin(b"x")))
    seeds["get-cut-short"] = seed("get", reply(2, 0, mp_bin(b"xyz"))[:-2])
    seeds["get-bytes-after"] = seed("get", reply(2, 0, mp_bin(b"x")) + b"\x01\x02")
    seeds["get-over-max-frame"] = seed("get", struct.pack(">I", 5000) + b"\x93\x02\x00", 0)
    seeds["set-if-conflict"] = seed("set_if", reply(2, 14, mp_str("conflict")))
    hello = reply(1, 0, mp_map([(mp_str("version"), mp_uint(1)),
                                (mp_str("server_id"), b"\xd9\x20" + SERVER_ID),
                                (mp_str("max_frame"), mp_uint(1 << 20)),
                                (mp_str("auth"), NIL)]))
    seeds["hello-good"] = seed("ping", hello, RAW_HELLO)
    seeds["hello-then-goodbye"] = seed("ping", hello + GOODBYE, RAW_HELLO)
    seeds["hello-shutting-down"] = seed("ping", reply(1, 11, mp_str("stopping")), RAW_HELLO)
    seeds["hello-busy"] = seed("ping", reply(1, 13, mp_str("full")), RAW_HELLO)
    seeds["hello-another-service"] = seed(
        "ping", b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", RAW_HELLO)
    items = ["get", "set", "flash_pop", "flash_pop_all", "ttl", "set_if", "ping",
             "flash_push_existing"]
    script = b"".join(reply(2 + n, 0, GOOD[ITEM_CALL[i]]) for n, i in enumerate(items))
    seeds["batch-every-op"] = batch_seed(items, script)
    seeds["batch-cut-after-two"] = batch_seed(items, b"".join(
        reply(2 + n, 0, GOOD[ITEM_CALL[i]]) for n, i in enumerate(items[:2])) + GOODBYE)
    # Sealed (byte 1's SEALED bit): the script's first byte says what becomes of the rest
    # (0: sealed whole, 1: a bit flipped at the next u16, 2: cut there, 3: sent unsealed).
    # sessd_connect's PING (request id 2) is answered first: the call's ids start at 3.
    seeds["sealed-get"] = seed("get", b"\x00" + reply(3, 0, GOOD["get"]), MAX_FRAME_1M | SEALED)
    seeds["sealed-get-then-goodbye"] = seed(
        "get", b"\x00" + reply(3, 0, mp_bin(b"x")) + GOODBYE, MAX_FRAME_1M | SEALED)
    seeds["sealed-get-flipped"] = seed(
        "get", b"\x01\x00\x09" + reply(3, 0, GOOD["get"]), MAX_FRAME_1M | SEALED)
    seeds["sealed-get-cut"] = seed(
        "get", b"\x02\x00\x0c" + reply(3, 0, GOOD["get"]), MAX_FRAME_1M | SEALED)
    seeds["sealed-get-unsealed"] = seed("get", b"\x03" + reply(3, 0, GOOD["get"]),
                                        MAX_FRAME_1M | SEALED)
    sealed_script = b"".join(reply(3 + n, 0, GOOD[ITEM_CALL[i]]) for n, i in enumerate(items))
    sealed_batch = bytearray(batch_seed(items, b"\x00" + sealed_script))
    sealed_batch[1] |= SEALED
    seeds["sealed-batch-every-op"] = bytes(sealed_batch)
    for name, data in seeds.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
