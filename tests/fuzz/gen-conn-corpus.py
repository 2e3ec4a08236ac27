#!/usr/bin/env python3
"""Write the seeds of corpus-conn/ (fuzz_conn.c describes the format): gen-conn-corpus.py DIR"""
import os
import sys

FRAME, SEND, TURN, READ, SHUT, CLOSE, TICK, STOP = range(8)
HELLO, PING, SET, GET, PUSH, POP, LIST, RAW = range(8)


def op(code, client=0, *args):
    return bytes([code | client << 3, *args])


def frame(kind, client=0, session=0, *args, small=False, fresh=False):
    """small: the frame that connects its client does so over the kernel's least buffers;
    fresh: a sealed HELLO with a client key of its own (k bit 6), not the fixed one."""
    return op(FRAME, client,
              kind | session << 3 | (0x80 if small else 0) | (0x40 if fresh else 0), *args)


def send(n, client=0):
    return op(SEND, client, (n - 1) >> 8, (n - 1) & 0xFF)


def read(n, client=0):
    return op(READ, client, n // 64 - 1)


def variant(code, v, client=0, *args):
    """An operation's variant v: (a >> 3) / 3 (TICK's with config bit 7, CLOSE's reset)."""
    return bytes([code | (v * 3 + client) << 3, *args])


def tick(client=0):
    return variant(TICK, 0, client)


def timer(pick, client=0):
    return variant(TICK, 1, client, pick)


def fail(n, burst=False, client=0):
    return variant(TICK, 2, client, (n - 1) | (0x80 if burst else 0))


def reset(client):
    return variant(CLOSE, 1, client)


def retire(target, client=0):
    """RETIRE of client target's sealed connection (RAW's kind with k bits 4-6 set)."""
    return op(FRAME, client, RAW | 0x70, target)


TCP, LIMIT, POOL, LIMIT_ONE, VARIANTS = 8, 16, 32, 64, 128
FIRE_ALL = 0x80


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
    # Clients 1 and 2 over loopback TCP: a pipeline of large replies one stops reading, a
    # reset close with it unread, the other's replies read.
    "tcp-pipelines-one-reset-unread": bytes([TCP | 2])
    + b"".join(frame(HELLO, c) + frame(SET, c, c, 90) + frame(GET, c, c) * 6 for c in (1, 2))
    + send(65535, 1) + send(65535, 2) + op(TURN) * 3 + read(1024, 2) + reset(1) + op(TURN) * 2
    + read(8192, 2),
    # --max-connections 2, clients 0 and 1 one process with both: after idle seconds a third
    # client is let in on trial and takes one's place once its HELLO is done.
    "limit-two-a-pool-gives-way-on-trial": bytes([LIMIT | POOL])
    + frame(HELLO, 0) + frame(HELLO, 1) + send(65535, 0) + send(65535, 1) + op(TURN)
    + read(256, 0) + read(256, 1) + tick() * 3 + frame(HELLO, 2) + frame(PING, 2, 0, 1)
    + send(65535, 2) + op(TURN) * 2 + read(512, 0) + read(512, 1) + read(512, 2),
    # --max-connections 1: a client that has not said HELLO gives way to the next, which is
    # then refused once a greeted one holds the place.
    "limit-one-ungreeted-gives-way-then-busy": bytes([LIMIT | LIMIT_ONE])
    + frame(HELLO, 0) + send(3, 0) + op(TURN) + frame(HELLO, 1) + send(65535, 1) + op(TURN)
    + read(256, 0) + read(256, 1) + frame(HELLO, 2) + send(65535, 2) + op(TURN)
    + read(256, 2),
    # Over TCP at --max-connections 2, HELLOs stating process identities: one host's
    # processes share it.
    "tcp-limit-processes-of-one-host": bytes([TCP | LIMIT | VARIANTS])
    + frame(HELLO, 1, 1) + frame(HELLO, 0) + send(65535, 1) + send(65535, 0) + op(TURN)
    + read(256, 1) + read(256, 0) + tick() * 3 + frame(HELLO, 2, 2) + send(65535, 2)
    + op(TURN) * 2 + read(512, 0) + read(512, 1) + read(512, 2),
    # Timers fired: a client that never says HELLO meets its deadline; after a stop, the
    # linger and close timeouts of one that reads nothing.
    "timers-hello-deadline-linger-close-timeout": bytes([VARIANTS | 2])
    + frame(HELLO, 0) + frame(HELLO, 1) + frame(SET, 1, 1, 90) + frame(GET, 1, 1) * 8
    + send(65535, 1) + op(TURN) + timer(0) + op(TURN) + op(STOP) + op(TURN) * 2
    + timer(FIRE_ALL) + read(256, 0) + read(8192, 1) + timer(FIRE_ALL),
    # Sealed: HELLO's exchange done, then no record: the deadline says SHUTTING_DOWN.
    "sealed-hello-then-no-record-deadline": bytes([VARIANTS | 4])
    + frame(HELLO) + send(65535) + op(TURN) * 3 + read(512) + timer(0) + read(512),
    # Allocations failing through a pipeline: once at points along it, then a burst.
    "allocation-failures-through-a-pipeline": bytes([VARIANTS | 2])
    + frame(HELLO) + frame(HELLO, 1) + send(65535) + send(65535, 1) + fail(1) + op(TURN)
    + read(512) + read(512, 1)
    + b"".join(frame(SET, 0, 1, 30) + frame(PUSH, 0, 1, 9) + frame(GET, 0, 1) + frame(POP, 0, 1)
               + frame(LIST, 1) + send(65535) + send(65535, 1) + fail(n) + op(TURN) + read(4096)
               + read(4096, 1) for n in (1, 2, 3, 5, 8, 13))
    + frame(GET, 0, 1) + send(65535) + fail(4, True) + op(TURN) + read(4096) + op(TURN),
    # Sealed over TCP with failing allocations: HELLO's exchange, records and their replies.
    "sealed-tcp-allocation-failures": bytes([VARIANTS | TCP | 4])
    + frame(HELLO, 1) + send(65535, 1) + op(TURN) * 3 + read(512, 1)
    + b"".join(frame(SET, 1, 1, 20) + frame(GET, 1, 1) + send(65535, 1) + fail(n) + op(TURN)
               + read(2048, 1) for n in (1, 2, 3, 4, 6)),
    # Over TCP with the kernel's least buffers, a client that reads nothing: the replies wait
    # for the socket, the server stops, and the close timeout finds them queued in the kernel
    # (the close resets the connection rather than leave them to an orphan).
    "tcp-slow-reader-stopped-its-replies-queued-in-the-kernel": bytes([VARIANTS | TCP])
    + frame(HELLO, 1, small=True) + frame(SET, 1, 1, 100) + frame(GET, 1, 1) * 12
    + send(65535, 1) + op(TURN) * 3 + op(STOP) + op(TURN) + timer(FIRE_ALL),
    # Over a Unix socket with the kernel's least buffers: replies wait for the socket, the
    # client shuts its side (the server goes on writing), then closes with replies still
    # waiting and the write fails; what it sent behind its GETs still runs.
    "slow-reader-shuts-then-closes-with-replies-waiting-for-the-socket": bytes([0])
    + frame(HELLO, 0, small=True) + frame(SET, 0, 1, 100) + frame(GET, 0, 1) * 12
    + frame(PUSH, 0, 1, 9) + send(65535) + op(TURN) * 2 + op(SHUT) + op(TURN) * 2
    + op(CLOSE) + op(TURN) * 2,
    # Sealed: one client RETIREs another's connection while that one's pipeline is read in
    # the same turn (closed at the flush, its replies unsent); then one RETIREs its own.
    "sealed-retire-of-a-connection-mid-pipeline-then-of-its-own": bytes([4 | 2])
    + frame(HELLO, 0) + frame(HELLO, 1) + send(65535, 0) + send(65535, 1) + op(TURN) * 3
    + read(512, 0) + read(512, 1) + frame(SET, 1, 1, 90) + frame(GET, 1, 1) * 6
    + retire(1, 0) + send(65535, 1) + send(65535, 0) + op(TURN) * 2 + read(4096, 0)
    + read(8192, 1) + retire(0, 0) + frame(PING, 0, 0, 1) + send(65535, 0) + op(TURN)
    + read(512, 0),
    # Sealed at --max-connections 2: two HELLOs answered (fresh client keys) and no record
    # since; a second later (TICK moves the clock) a newcomer closes the oldest, whose grace
    # for its first record has run out, told SHUTTING_DOWN sealed (drop_pending).
    "sealed-answered-no-record-past-the-grace-gives-way-told-shutting-down": bytes([4 | LIMIT])
    + frame(HELLO, 0, fresh=True) + frame(HELLO, 1, fresh=True) + send(65535, 0)
    + send(65535, 1) + op(TURN) + read(512, 0) + read(512, 1) + tick()
    + frame(HELLO, 2, fresh=True) + frame(PING, 2, 0, 1) + send(65535, 2) + op(TURN) * 2
    + read(1024, 0) + read(512, 1) + read(512, 2),
    # Sealed at --max-connections 2, within the grace: the HELLO whose client key was
    # answered before (the fixed key, used twice: a replay) gives way, not the fresh one.
    "sealed-a-replayed-hello-gives-way-before-a-fresh-one-in-its-grace": bytes([4 | LIMIT])
    + frame(HELLO, 0) + frame(HELLO, 1) + send(65535, 0) + send(65535, 1) + op(TURN)
    + read(512, 0) + read(512, 1) + frame(HELLO, 2, fresh=True) + frame(PING, 2, 0, 1)
    + send(65535, 2) + op(TURN) * 2 + read(512, 0) + read(1024, 1) + read(512, 2),
    # --max-connections 1: a newcomer let in on trial (the one connection idle 3 s) keeps its
    # place from its own source's next newcomer (refused BUSY) for half a second; a second
    # later the next one's newcomer displaces it.
    "limit-one-a-newcomer-on-trial-keeps-its-place-half-a-second": bytes([LIMIT | LIMIT_ONE])
    + frame(HELLO, 0) + frame(PING, 0, 0, 1) + send(65535, 0) + op(TURN) + read(512, 0)
    + tick() * 3 + frame(PING, 1, 0, 1) + op(TURN) + frame(PING, 2, 0, 1) + op(TURN)
    + read(256, 2) + op(CLOSE, 2) + tick() + frame(PING, 2, 0, 1) + op(TURN) + read(256, 1)
    + frame(HELLO, 2) + send(65535, 2) + op(TURN) * 2 + read(512, 2) + read(512, 0),
}

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
for name, data in SEEDS.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
