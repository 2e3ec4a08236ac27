#!/usr/bin/env python3
"""Write the seeds of corpus-conn/ (fuzz_conn.c describes the format): gen-conn-corpus.py DIR"""
import os
import sys

FRAME, SEND, TURN, READ, SHUT, CLOSE, TICK, STOP = range(8)
HELLO, PING, SET, GET, PUSH, POP, LIST, RAW = range(8)


def op(code, client=0, *args):
    return bytes([code | client << 3, *args])


def frame(kind, client=0, session=0, *args):
    return op(FRAME, client, kind | session << 3, *args)


def send(n, client=0):
    return op(SEND, client, (n - 1) >> 8, (n - 1) & 0xFF)


def read(n, client=0):
    return op(READ, client, n // 64 - 1)


def raw(body, client=0, announce=None):
    lying = announce is not None
    n = len(body)
    head = announce if lying else n
    assert head <= 0xFFFF and head % 512 == n
    return op(FRAME, client, RAW | (8 if lying else 0), head >> 8, head & 0xFF) + body


SEEDS = {
    # A session's life, its frames cut into 3-byte reads across turns.
    "hello-set-get-in-3-byte-reads": bytes([0])
    + frame(HELLO) + frame(SET, 0, 1, 20) + frame(GET, 0, 1) + frame(POP, 0, 1)
    + (send(3) + op(TURN)) * 40 + read(4096),
    # Small budgets, large replies pipelined and not read: holds, pauses, then a drain.
    "pipelined-large-gets-unread-small-budgets": bytes([2])
    + frame(HELLO) + frame(SET, 0, 2, 90) + b"".join(frame(GET, 0, 2) for _ in range(12))
    + send(65535) + op(TURN) * 6 + read(1024) + op(TURN) * 4,
    # Three clients at once, one stops reading, one shuts its side, one closes.
    "three-clients-shut-close": bytes([0])
    + b"".join(frame(HELLO, c) + frame(PUSH, c, c, 30) + frame(PING, c, 0, 5) for c in range(3))
    + b"".join(send(65535, c) for c in range(3)) + op(TURN) + op(SHUT, 1) + op(CLOSE, 2)
    + frame(POP, 0) + send(65535) + op(TURN) * 2 + read(2048) + read(2048, 1),
    # A frame announced past max_frame, and one that lies about its length, before replies.
    "lying-and-oversized-lengths": bytes([1])
    + frame(HELLO) + frame(PING, 0, 0, 2) + raw(b"\x93\x01\x02", 0, 0x2003)
    + send(65535) + op(TURN) * 2 + read(512) + frame(HELLO, 1) + raw(b"", 1, 0x00)
    + send(65535, 1) + op(TURN) + read(512, 1),
    # A frame that announces more than comes, swallowing the requests behind it.
    "a-frame-announcing-more-swallows-the-next": bytes([0])
    + frame(HELLO) + raw(b"\x94\x11\x05", 0, 0x0403) + frame(GET) + frame(PING, 0, 0, 1)
    + send(65535) + op(TURN) * 2 + read(512),
    # The server stops with a pipeline half read, and ticks while clients linger.
    "stop-mid-pipeline": bytes([2])
    + frame(HELLO) + b"".join(frame(SET, 0, i % 4, 5) for i in range(8)) + send(700)
    + op(TURN) + op(STOP) + send(65535) + op(TURN) + op(TICK) + read(8192) + op(TURN) * 3,
    # A request before HELLO, and HELLO twice.
    "no-hello-and-hello-twice": bytes([0])
    + frame(GET) + send(65535) + op(TURN) + read(256) + frame(HELLO, 1) + frame(HELLO, 1)
    + send(65535, 1) + op(TURN) + read(512, 1),
    # Sealed (an --auth-file secret): HELLO's key exchange put off and retried, then records
    # cut into 5-byte reads.
    "sealed-hello-then-records-in-5-byte-reads": bytes([4])
    + frame(HELLO) + send(65535) + op(TURN) * 3 + read(512)
    + frame(SET, 0, 1, 30) + frame(GET, 0, 1) + frame(PUSH, 0, 1, 9) + frame(POP, 0, 1)
    + (send(5) + op(TURN)) * 60 + read(4096),
    # Sealed, small budgets, two clients: one pipelines large replies, one's stream gets bytes
    # no record holds.
    "sealed-pipeline-and-a-forged-record": bytes([6])
    + frame(HELLO) + frame(HELLO, 1) + send(65535) + send(65535, 1) + op(TURN) * 3
    + read(512) + read(512, 1) + frame(SET, 0, 2, 95)
    + b"".join(frame(GET, 0, 2) for _ in range(10)) + frame(PING, 1, 0, 3)
    + raw(b"\x00\x01\x02", 1) + send(65535) + send(65535, 1) + op(TURN) * 4 + read(2048)
    + read(512, 1),
}

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
for name, data in SEEDS.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
