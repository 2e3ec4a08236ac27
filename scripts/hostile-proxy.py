#!/usr/bin/env python3
"""A hostile server in front of a real sessd, for the clients' side (by hand; not in CI).

    scripts/hostile-proxy.py LISTEN_SOCKET DAEMON_SOCKET SCENARIO [N [K]]

Listens on the Unix socket LISTEN_SOCKET and passes each connection through to the plain
(not sealed) sessd at DAEMON_SOCKET, except that the Nth reply after HELLO (default 1) of
each of the first K connections (default: every one) gets SCENARIO; all other bytes pass as
they are, so that a client shows whether it serves again once the faults are past. Every reply after a
scenario that leaves the connection open passes too, so a client that reads on shows what it
does with a stream gone out of step. Standard library only.

Scenarios (the reply's frame is F, its body [id, status, result]):
  cut           half of F, then the connection is closed
  len4g         a frame length of 0xfffffff0 and 16 bytes behind it, then silence
  lenmax        a frame length one past 1 MiB (sessd's --max-frame) and a few bytes, then silence
  innerlen      F with its result's bin/str length made larger than the frame holds
  wrongtype     F with its result replaced by a map of every wrong type
  extra         F with a fourth element
  missing       F with two elements only
  status        F with status 99 (unknown)
  foreign       F with a request id never sent (id + 1000)
  duplicate     F twice
  swap          F held and sent after the next reply (replies out of order)
  early         a reply (id 1, OK, nil) sent on connect, before any request
  silent        F never sent (nor anything after it)
  trickle       F one byte a second
  endless       a frame header of 1 MiB and then bytes without end (1 MiB/s)
  biggest       F replaced by an OK bin of the most a 1 MiB frame holds
  garbage       F replaced by 64 random bytes
Ctrl-C stops it. Used by scripts/hostile-clients.sh.
"""
import importlib.util
import os
import socket
import struct
import sys
import threading
import time

# The shortest-form msgpack uint of the fuzz corpus's generator (standard library only).
_spec = importlib.util.spec_from_file_location(
    "gen_client_corpus",
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fuzz",
                 "gen-client-corpus.py"))
_gen = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_gen)
mp_uint = _gen.mp_uint

listen_path, daemon_path, scenario = sys.argv[1], sys.argv[2], sys.argv[3]
nth = int(sys.argv[4]) if len(sys.argv) > 4 else 1
faulted = int(sys.argv[5]) if len(sys.argv) > 5 else 1 << 62
MAX_FRAME = 1 << 20


def read_uint(b, p):
    """(value, next offset) of the uint at b[p]."""
    t = b[p]
    if t < 0x80:
        return t, p + 1
    size = {0xcc: 1, 0xcd: 2, 0xce: 4, 0xcf: 8}[t]
    return int.from_bytes(b[p + 1:p + 1 + size], "big"), p + 1 + size


def parts(body):
    """(request id, status, result bytes) of a reply body in sessd's form (fixarray 3)."""
    rid, p = read_uint(body, 1)
    status, p = read_uint(body, p)
    return rid, status, body[p:]


def frame(body):
    return struct.pack(">I", len(body)) + body


def reply(rid, status, result, head=b"\x93"):
    return frame(head + mp_uint(rid) + mp_uint(status) + result)


def bad_result_lengths(result):
    """result with its str/bin length raised past the bytes it has."""
    t = result[0]
    if t in (0xc4, 0xd9):
        return result[:1] + b"\xff" + result[2:]
    if t in (0xc5, 0xda):
        return result[:1] + b"\xff\xff" + result[3:]
    if t in (0xc6, 0xdb):
        return result[:1] + b"\xff\xff\xff\xf0" + result[5:]
    if 0xa0 <= t <= 0xbf:
        return b"\xbf" + result[1:]
    return b"\xc6\x7f\xff\xff\xff" + result


WRONG = (b"\x8a" + b"\xa1a\xc3" + b"\xa1b\xcb" + b"\x00" * 8 + b"\xa1c\xd3" + b"\xff" * 8 +
         b"\xa1d\x90" + b"\xa1e\xc0" + b"\xa1f\xa3abc" + b"\xa1g\xc4\x01x" + b"\xa1h\xd6\x01\x00\x00\x00\x00" +
         b"\xa1i\xca\x00\x00\x00\x00" + b"\xa1j\x80")


def pump(src, dst, on_frame=None):
    """Pass src's bytes to dst; with on_frame, frame by frame through it."""
    buf = b""
    try:
        while True:
            chunk = src.recv(65536)
            if not chunk:
                break
            if on_frame is None:
                dst.sendall(chunk)
                continue
            buf += chunk
            while len(buf) >= 4:
                n = struct.unpack(">I", buf[:4])[0]
                if len(buf) < 4 + n:
                    break
                f, buf = buf[:4 + n], buf[4 + n:]
                if on_frame(f) is False:
                    return
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def serve(down, scenario):
    up = socket.socket(socket.AF_UNIX)
    up.connect(daemon_path)
    count = [0]
    held = [None]
    if scenario == "early":
        down.sendall(reply(1, 0, b"\xc0"))

    def on_reply(f):
        count[0] += 1
        if os.environ.get("HOSTILE_PROXY_DEBUG") and count[0] - 1 == nth:
            print(f"{scenario}: faulting reply {nth} of a connection", file=sys.stderr)
        k = count[0] - 1  # the HELLO's reply is 0
        if held[0] is not None:
            down.sendall(f + held[0])
            held[0] = None
            return True
        if k != nth:
            down.sendall(f)
            return True
        rid, status, result = parts(f[4:])
        s = scenario
        if s == "cut":
            down.sendall(f[:len(f) // 2])
            # shutdown, not close: the other thread's recv holds the descriptor open.
            down.shutdown(socket.SHUT_RDWR)
            return False
        if s == "len4g":
            down.sendall(struct.pack(">I", 0xfffffff0) + b"\x93" * 16)
            while True:
                time.sleep(3600)
        if s == "lenmax":
            down.sendall(struct.pack(">I", MAX_FRAME + 1) + b"\x93\x01\x00")
            while True:
                time.sleep(3600)
        if s == "innerlen":
            down.sendall(reply(rid, status, bad_result_lengths(result)))
        elif s == "wrongtype":
            down.sendall(reply(rid, 0, WRONG))
        elif s == "extra":
            down.sendall(reply(rid, status, result + b"\xc0", head=b"\x94"))
        elif s == "missing":
            down.sendall(frame(b"\x92" + mp_uint(rid) + mp_uint(status)))
        elif s == "status":
            down.sendall(reply(rid, 99, b"\xa5weird"))
        elif s == "foreign":
            down.sendall(reply(rid + 1000, status, result))
        elif s == "duplicate":
            down.sendall(f + f)
        elif s == "swap":
            held[0] = f
        elif s == "silent":
            # Nothing more, with the connection kept open.
            while True:
                time.sleep(3600)
        elif s == "trickle":
            for i in range(len(f)):
                down.sendall(f[i:i + 1])
                time.sleep(1)
        elif s == "endless":
            down.sendall(struct.pack(">I", MAX_FRAME) + b"\x93")
            while True:
                down.sendall(b"\x00" * 65536)
                time.sleep(0.0625)
        elif s == "biggest":
            head = b"\x93" + mp_uint(rid) + b"\x00\xc6"
            n = MAX_FRAME - len(head) - 4
            down.sendall(frame(head + struct.pack(">I", n) + os.urandom(n)))
        elif s == "garbage":
            down.sendall(frame(os.urandom(64)))
        else:
            down.sendall(f)
        return True

    threading.Thread(target=pump, args=(down, up), daemon=True).start()
    pump(up, down, on_reply)


def main():
    try:
        os.unlink(listen_path)
    except FileNotFoundError:
        pass
    ls = socket.socket(socket.AF_UNIX)
    ls.bind(listen_path)
    ls.listen(64)
    accepted = 0
    while True:
        c, _ = ls.accept()
        accepted += 1
        threading.Thread(target=serve, args=(c, scenario if accepted <= faulted else "none"),
                         daemon=True).start()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
