#!/usr/bin/env python3
"""Write tests/fuzz/corpus-dispatch/: a few request sequences for fuzz_dispatch, in the
format fuzz_dispatch.c describes (a config byte, then operations). Standard library only.

Usage: gen-dispatch-corpus.py OUTDIR
"""
import os
import sys

GET, SET, TOUCH, DESTROY, SET_IF, PUSH, PUSH_EXISTING, POP = range(8)
COUNT, LIST, CLEAR, STATS, NAMESPACES, ADVANCE, EXPIRE, RAW = range(8, 16)
ALL = 0x10  # SET_IF: right tag; FLASH_POP: every type; STATS: whole server; GET: LOAD
LOAD = GET | ALL
TTL = COUNT | ALL
TOUCH_IF = TOUCH | ALL  # with RIGHT: the tag of the session's data
RIGHT = 0x20
DESTROY_IF_FLASH = DESTROY | ALL  # the message: len fill, or as TOKEN and OTHER say
TOKEN = 0x20  # DESTROY_IF_FLASH: the oldest message of the type in the model
OTHER = 0x40  # with TOKEN: one byte off it; alone: the next type's oldest message


def key(ns=0, sid=0, ftype=0, id_bin=False, msg_bin=False):
    return ns | sid << 2 | ftype << 4 | (0x40 if id_bin else 0) | (0x80 if msg_bin else 0)


def op(code, k=0, *args):
    return bytes([code, k] + list(args))


SEEDS = {
    # a web request's life: read, save, flash, redirect, pop
    "session-life": bytes([0]) + b"".join([
        op(GET, key()),
        op(SET, key(), 20, 7, 6),
        op(GET, key()),
        op(SET_IF | ALL, key(), 30, 9, 6),
        op(SET_IF, key(), 30, 9, 6),
        op(PUSH_EXISTING, key(ftype=0), 5, 1, 6),
        op(PUSH, key(ftype=1, msg_bin=True), 0, 0, 5),
        op(PUSH, key(ftype=0), 3, 2, 6),
        op(POP | ALL, key()),
        op(POP, key(ftype=0)),
        op(TOUCH, key(), 4),
        op(COUNT, key()),
        op(LIST, key(), 1),
        op(STATS | ALL, key()),
        op(DESTROY, key()),
        op(GET, key()),
    ]),
    # a page load that counts the flashes queued, before and after pushes and a pop
    "load-counts-flashes": bytes([0]) + b"".join([
        op(LOAD, key()),
        op(SET, key(), 20, 7, 6),
        op(LOAD, key()),
        op(PUSH_EXISTING, key(ftype=0), 5, 1, 6),
        op(PUSH, key(ftype=1, msg_bin=True), 0, 0, 5),
        op(LOAD, key(id_bin=True)),
        op(POP, key(ftype=0)),
        op(LOAD, key()),
        op(PUSH, key(1, 1, 2), 40, 3, 3),
        op(LOAD, key(1, 1)),
        op(SET, key(2, 3), 251, 1, 7),
        op(LOAD, key(2, 3)),
    ]),
    # a slow request's touch over what it read, after a save with a longer lifetime
    "touch-if": bytes([0]) + b"".join([
        op(TOUCH_IF | RIGHT, key(), 5),
        op(SET, key(), 20, 7, 5),
        op(TOUCH_IF | RIGHT, key(), 6),
        op(SET, key(), 21, 7, 6),
        op(TOUCH_IF, key(), 5),
        op(ADVANCE, 0, 205),
        op(GET, key()),
        op(PUSH, key(1, 1), 3, 1, 5),
        op(TOUCH_IF | RIGHT, key(1, 1), 6),
        op(TOUCH_IF, key(1, 1), 6),
        op(DESTROY, key()),
        op(TOUCH_IF | RIGHT, key(), 6),
        op(GET, key()),
    ]),
    # flash before the session exists, then expiry, then the reclaim
    "flash-first-expiry": bytes([0]) + b"".join([
        op(PUSH, key(1, 1, 2), 40, 3, 3),
        op(PUSH_EXISTING, key(1, 2), 4, 3, 3),
        op(SET, key(1, 2, id_bin=True), 10, 1, 2),
        op(ADVANCE, 0, 5),
        op(GET, key(1, 2)),
        op(ADVANCE, 0, 120),
        op(COUNT, key(1)),
        op(STATS, key(1)),
        op(EXPIRE, 0, 10),
        op(STATS, key(1)),
        op(NAMESPACES, 0, 1),
        op(POP, key(1, 1, 2)),
    ]),
    # limits: data over max_frame - 16, flashes over max_frame / 2, a memory limit
    "limits": bytes([1]) + b"".join([
        op(SET, key(2, 3), 255, 1, 7),
        op(SET, key(2, 3), 251, 1, 7),
        op(PUSH, key(2, 3, 2), 230, 4, 7),
        op(PUSH, key(2, 3, 2), 230, 4, 7),
        op(SET, key(0, 0), 255, 2, 7),
        op(SET, key(0, 1), 255, 3, 7),
        op(SET, key(1, 0), 255, 4, 7),
        op(STATS | ALL, key()),
        op(CLEAR, key(0)),
        op(NAMESPACES, 0, 0),
    ]),
    # the 48 KiB memory limit reached: 3950-byte sessions in the three namespaces until a
    # write is refused NO_MEMORY (its warning, and the line by namespace the walk then
    # says), a push refused, a CLEAR and the warnings held back said at EXPIRE and the end
    "memory-limit-reached-the-line-by-namespace": bytes([1]) + b"".join(
        [op(SET, key(ns, sid), 250, ns * 4 + sid, 7) for ns in range(3) for sid in range(4)]
        + [op(PUSH, key(2, 3, 2), 200, 1, 7), op(SET, key(1, 2), 250, 9, 7),
           op(EXPIRE, 0, 3), op(CLEAR, key(1)), op(SET, key(1, 2), 250, 9, 7),
           op(EXPIRE, 0, 3), op(STATS | ALL, key())]),
    # a bigger frame, several namespaces, LIST pages, CLEAR, malformed frames
    "admin": bytes([2]) + b"".join([
        op(SET, key(0, 0), 1, 1, 5),
        op(SET, key(0, 1), 2, 1, 5),
        op(SET, key(0, 2), 3, 1, 5),
        op(SET, key(0, 3), 4, 1, 5),
        op(PUSH, key(2, 0), 1, 1, 5),
        op(LIST, key(0), 1),
        op(LIST, key(0), 0),
        op(NAMESPACES, 0, 1),
        op(RAW, 0, 3, 0x93, 0x02, 0x01),
        op(RAW, 0, 4, 0x94, 0x10, 0x05, 0xc0),
        op(RAW, 0, 8, 0x93, 0x02, 0x01, 0xc4, 0x03, 0x61, 0x62, 0x63),
        op(RAW, 0, 6, 0x93, 0x02, 0x02, 0xa2, 0x68, 0x69),
        op(CLEAR, key(0)),
        op(COUNT, key(0)),
        op(STATS | ALL, key()),
    ]),
    # a lock held as a flash queue (PROTOCOL.md, "Locks on a flash queue"): no session, an
    # empty or missing queue, another holder's token, a token one byte off, another type's,
    # str against bin; then the holder's release, and a session with data removed likewise
    "destroy-if-flash": bytes([0]) + b"".join([
        op(DESTROY_IF_FLASH | TOKEN, key(1, 1, 2)),
        op(PUSH, key(1, 1, 2), 16, 9, 4),
        op(PUSH, key(1, 1, 2, msg_bin=True), 16, 10, 4),
        op(PUSH, key(1, 1, 0), 16, 10, 4),
        op(DESTROY_IF_FLASH, key(1, 1, 2), 16, 10),
        op(DESTROY_IF_FLASH | TOKEN | OTHER, key(1, 1, 2)),
        op(DESTROY_IF_FLASH | TOKEN, key(1, 1, 1)),
        op(DESTROY_IF_FLASH | OTHER, key(1, 1, 2)),
        op(TTL, key(1, 1)),
        op(POP, key(1, 1, 0)),
        op(DESTROY_IF_FLASH | TOKEN, key(1, 1, 0)),
        op(DESTROY_IF_FLASH | TOKEN, key(1, 1, 2, msg_bin=True)),
        op(COUNT, key(1)),
        op(TTL, key(1, 1)),
        op(SET, key(0, 0), 20, 7, 6),
        op(PUSH_EXISTING, key(0, 0, 1), 0, 0, 5),
        op(DESTROY_IF_FLASH | TOKEN | OTHER, key(0, 0, 1)),
        op(DESTROY_IF_FLASH | TOKEN, key(0, 0, 1)),
        op(GET, key()),
        op(STATS | ALL, key()),
    ]),
    # pipelined frames (config bit 2): more SET_IFs over 4 KiB of data than one loop turn's
    # budget for their hashes, so that some are put off (DISPATCH_LATER) and handed again;
    # LIST and NAMESPACES pages, pops, TTLs and changes in the same turns; reads of every
    # session, for the hints' lookups
    "pipelined": bytes([6]) + b"".join([
        op(SET, key(), 255, 7, 7),
        op(PUSH, key(ftype=1), 20, 3, 7),
        op(TTL, key()),
        op(PUSH, key(1, 1), 3, 1, 4),
        op(TTL, key(1, 1)),
        op(TTL, key(2, 2)),
    ] + [op(SET, key(n, i, id_bin=i == 1), 10 * i + n, i, 6) for n in range(3) for i in range(4)]
      + [op(o, key(n, i)) for o in (GET, LOAD, POP) for n in range(3) for i in range(4)]
      + [op(SET_IF | ALL, key(), 255, 7, 7)] * 250 + [
        op(LIST, key(), 0),
        op(NAMESPACES, 0, 0),
        op(POP | ALL, key()),
        op(TOUCH_IF | RIGHT, key(), 6),
        op(ADVANCE, 0, 5),
        op(TTL, key()),
        op(COUNT, key()),
        op(STATS | ALL, key()),
    ]),
}


def main():
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(outdir, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
