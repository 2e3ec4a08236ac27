#!/usr/bin/env python3
"""A hostile fake sessd against libsessd (through sessctl, ASan build). Usage:
    hostile_server.py SESSCTL WORKDIR
e.g. python3 tests/fuzz/hostile/hostile_server.py build-asan/client/sessctl /tmp/hostile-server
(needs Python's `cryptography`; not part of CI).
Each case serves one connection on a fresh Unix socket and runs `sessctl --auth-file ...
--timeout 1000 ping` (or get) against it: the client must fail cleanly (exit status 2, a
message, no sanitizer report) within its timeout plus a margin, never crash or hang.
"""
import os
import socket
import struct
import subprocess
import sys
import threading
import time

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from sealproto import (FALSE, NIL, TRUE, derive, frame, hm, mp_array, mp_bin, mp_decode,
                       mp_map, mp_str, mp_uint, open_record, psk_of, pub, recv_exact,
                       seal_record)

SECRET = b"hostile-server: secret of 32 B!!"
PSK = psk_of(SECRET)
sessctl, work = sys.argv[1], sys.argv[2]
os.makedirs(work, exist_ok=True)
secret_path = os.path.join(work, "secret")
with open(secret_path, "wb") as f:
    f.write(SECRET)
os.chmod(secret_path, 0o600)
TIMEOUT_MS = 1000
SID = "0123456789abcdef0123456789abcdef"
results = []


def read_frame(sock, timeout=5):
    deadline = time.monotonic() + timeout
    n = struct.unpack(">I", recv_exact(sock, 4, deadline))[0]
    return recv_exact(sock, n, deadline)


class Conn:
    """The server side of one connection, after reading the client's HELLO."""

    def __init__(self, sock):
        self.sock = sock
        body = read_frame(sock)
        v, _ = mp_decode(body)
        self.rid = v[1]
        auth = v[4]
        self.c_pk, self.c_proof = bytes(auth[b"kx"]), bytes(auth[b"proof"])
        assert hm(PSK, b"sessd-kx-v1 client", self.c_pk) == self.c_proof
        self.s_sk = X25519PrivateKey.generate()
        self.s_pk = pub(self.s_sk)
        shared = self.s_sk.exchange(X25519PublicKey.from_public_bytes(self.c_pk))
        self.c2s, self.s2c, self.proof = derive(PSK, shared, self.c_pk, self.s_pk)
        self.sent = 0
        self.received = 0

    def hello_result(self, kx=None, auth=TRUE, extra=()):
        kx = kx if kx is not None else mp_map([(mp_str("key"), mp_bin(self.s_pk)),
                                               (mp_str("proof"), mp_bin(self.proof))])
        pairs = [(mp_str("version"), mp_uint(1)), (mp_str("server"), mp_str("fake")),
                 (mp_str("server_id"), mp_str(SID)), (mp_str("max_frame"), mp_uint(1 << 20)),
                 (mp_str("auth"), auth)]
        if kx is not False:
            pairs.append((mp_str("kx"), kx))
        pairs.extend(extra)
        return frame(mp_array([mp_uint(self.rid), mp_uint(0), mp_map(pairs)]))

    def hello_ok(self):
        self.sock.sendall(self.hello_result())

    def record(self, plain, number=None, length=None, key=None):
        n = self.sent if number is None else number
        if number is None:
            self.sent += 1
        return seal_record(key or self.s2c, n, plain, length)

    def read_request(self, timeout=5):
        """The client's next request frame body (opening its records)."""
        deadline = time.monotonic() + timeout
        buf = b""
        while True:
            if len(buf) >= 4 and len(buf) >= 4 + struct.unpack(">I", buf[:4])[0]:
                n = struct.unpack(">I", buf[:4])[0]
                v, _ = mp_decode(buf[4:4 + n])
                return v
            header = recv_exact(self.sock, 4, deadline)
            n = struct.unpack(">I", header)[0]
            rec = header + recv_exact(self.sock, n, deadline)
            buf += open_record(self.c2s, self.received, rec)
            self.received += 1

    def reply(self, rid, status=0, result=NIL):
        return frame(mp_array([mp_uint(rid), mp_uint(status), result]))


def run_case(name, serve, cmd=("ping",), want_rc=2, max_s=None, timeout_ms=TIMEOUT_MS):
    path = os.path.join(work, "s%d.sock" % len(results))
    if os.path.exists(path):
        os.unlink(path)
    ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ls.bind(path)
    ls.listen(8)
    err = []

    def server():
        try:
            s, _ = ls.accept()
            try:
                serve(s)
            finally:
                time.sleep(0.05)
        except Exception as e:  # noqa
            err.append("%s: %s" % (type(e).__name__, e))

    t = threading.Thread(target=server, daemon=True)
    t.start()
    env = dict(os.environ, ASAN_OPTIONS="abort_on_error=1:detect_leaks=1",
               UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1")
    t0 = time.monotonic()
    try:
        p = subprocess.run([sessctl, "--connect", "unix:" + path, "--auth-file", secret_path,
                            "--timeout", str(timeout_ms)] + list(cmd),
                           capture_output=True, timeout=30, env=env)
        rc, out, errout = p.returncode, p.stdout, p.stderr.decode(errors="replace")
    except subprocess.TimeoutExpired:
        rc, out, errout = "HUNG", b"", ""
    took = time.monotonic() - t0
    ls.close()
    limit = max_s if max_s is not None else timeout_ms / 1000 + 1.0
    san = "Sanitizer" in errout or "runtime error" in errout
    ok = rc == want_rc and took <= limit and not san
    msg = errout.strip().splitlines()[-1] if errout.strip() else ""
    line = "%-4s %-55s rc=%s %.2fs %s%s" % ("ok" if ok else "FAIL", name, rc, took, msg[:110],
                                           (" [server: %s]" % err[0]) if err else "")
    if san:
        line += "\n" + errout
    print(line, flush=True)
    results.append(ok)


def hello_then(fn):
    def serve(s):
        c = Conn(s)
        fn(c, s)
    return serve


def hang(s, seconds=5):
    time.sleep(seconds)


# ---- HELLO replies ----
run_case("closes at once", lambda s: s.close())
run_case("never answers HELLO", lambda s: hang(s))
run_case("AUTH_FAILED", hello_then(lambda c, s: s.sendall(
    frame(mp_array([mp_uint(c.rid), mp_uint(9), mp_str("wrong proof of the secret")])))))
run_case("OK without kx", hello_then(lambda c, s: s.sendall(c.hello_result(kx=False))))
run_case("OK, kx, auth nil", hello_then(lambda c, s: s.sendall(c.hello_result(auth=NIL))))
run_case("OK, kx, auth false", hello_then(lambda c, s: s.sendall(c.hello_result(auth=FALSE))))
run_case("kx with a wrong proof", hello_then(lambda c, s: s.sendall(c.hello_result(
    kx=mp_map([(mp_str("key"), mp_bin(c.s_pk)), (mp_str("proof"), mp_bin(bytes(32)))])))))
run_case("kx proof of 31 bytes", hello_then(lambda c, s: s.sendall(c.hello_result(
    kx=mp_map([(mp_str("key"), mp_bin(c.s_pk)), (mp_str("proof"), mp_bin(c.proof[:31]))])))))
run_case("kx key as str", hello_then(lambda c, s: s.sendall(c.hello_result(
    kx=mp_map([(mp_str("key"), mp_str(c.s_pk)), (mp_str("proof"), mp_bin(c.proof))])))))
run_case("kx with a third key", hello_then(lambda c, s: s.sendall(c.hello_result(
    kx=mp_map([(mp_str("key"), mp_bin(c.s_pk)), (mp_str("proof"), mp_bin(c.proof)),
               (mp_str("x"), NIL)])))))
run_case("kx named twice", hello_then(lambda c, s: s.sendall(c.hello_result(
    extra=[(mp_str("kx"), mp_map([(mp_str("key"), mp_bin(c.s_pk)),
                                  (mp_str("proof"), mp_bin(c.proof))]))]))))
run_case("kx is nil", hello_then(lambda c, s: s.sendall(c.hello_result(kx=NIL))))
run_case("kx low-order key (zero), any proof", hello_then(lambda c, s: s.sendall(c.hello_result(
    kx=mp_map([(mp_str("key"), mp_bin(bytes(32))), (mp_str("proof"), mp_bin(bytes(32)))])))))
run_case("kx: the client's own key and proof echoed", hello_then(lambda c, s: s.sendall(
    c.hello_result(kx=mp_map([(mp_str("key"), mp_bin(c.c_pk)),
                              (mp_str("proof"), mp_bin(c.c_proof))])))))
run_case("HELLO reply frame length 0xffffffff", hello_then(
    lambda c, s: (s.sendall(b"\xff\xff\xff\xff" + b"\x00" * 100), hang(s, 3))))
run_case("HELLO reply frame length 0", hello_then(lambda c, s: s.sendall(b"\0\0\0\0")))
run_case("HELLO reply garbage body", hello_then(lambda c, s: s.sendall(frame(b"\x93\xc1\xc1\xc1"))))
run_case("HELLO reply, wrong request id", hello_then(lambda c, s: s.sendall(
    frame(mp_array([mp_uint(c.rid + 7), mp_uint(0), mp_map([])])))))
run_case("HELLO reply cut short, then silence", hello_then(
    lambda c, s: (s.sendall(c.hello_result()[:30]), hang(s, 3))))
run_case("HELLO reply cut short, then close", hello_then(
    lambda c, s: s.sendall(c.hello_result()[:30])))


def trickle(s, data, gap):
    for b in data:
        s.sendall(bytes([b]))
        time.sleep(gap)


run_case("HELLO reply byte by byte, fast (fine)", hello_then(
    lambda c, s: (trickle(s, c.hello_result(), 0.001), s.sendall(c.record(c.reply(
        c.read_request()[1]))), time.sleep(0.2))), want_rc=0)
run_case("HELLO reply trickled past the timeout (1 byte/100ms)", hello_then(
    lambda c, s: trickle(s, c.hello_result(), 0.1)))

# ---- records after a right HELLO ----


def after_ok(fn):
    def serve(c, s):
        c.hello_ok()
        req = c.read_request()
        fn(c, s, req[1])
    return hello_then(serve)


def flip(r, i):
    r = bytearray(r)
    r[i] ^= 1
    return bytes(r)


run_case("right reply (control)", after_ok(lambda c, s, rid: (
    s.sendall(c.record(c.reply(rid))), time.sleep(0.2))), want_rc=0)
run_case("record with a wrong tag", after_ok(lambda c, s, rid: (
    s.sendall(flip(c.record(c.reply(rid)), -1)), hang(s, 2))))
run_case("record sealed with the client's key", after_ok(lambda c, s, rid: (
    s.sendall(c.record(c.reply(rid), key=c.c2s)), hang(s, 2))))
run_case("record length 0xffffffff", after_ok(lambda c, s, rid: (
    s.sendall(b"\xff\xff\xff\xff" + b"\0" * 64), hang(s, 2))))
run_case("record length 65553", after_ok(lambda c, s, rid: (
    s.sendall(struct.pack(">I", 65553) + b"\0" * 64), hang(s, 2))))
run_case("record length 16", after_ok(lambda c, s, rid: (
    s.sendall(struct.pack(">I", 16) + b"\0" * 16), hang(s, 2))))
run_case("record announced 65552, then silence", after_ok(lambda c, s, rid: (
    s.sendall(struct.pack(">I", 65552) + b"\0" * 100), hang(s, 3))))
run_case("truncated record, then close", after_ok(lambda c, s, rid: (
    s.sendall(c.record(c.reply(rid))[:-5]))))
run_case("plain reply instead of a record", after_ok(lambda c, s, rid: (
    s.sendall(c.reply(rid)), hang(s, 2))))
run_case("replayed record (reply split in two)", after_ok(lambda c, s, rid: (
    lambda r, r0: (s.sendall(r0 + r0), hang(s, 2)))(c.reply(rid), c.record(c.reply(rid)[:3]))))
run_case("reordered records", after_ok(lambda c, s, rid: (
    lambda r: (lambda a, b: (s.sendall(b + a), hang(s, 2)))(c.record(r[:3]), c.record(r[3:])))(
        c.reply(rid))))
run_case("record number skipped", after_ok(lambda c, s, rid: (
    c.record(b"x"), s.sendall(c.record(c.reply(rid))), hang(s, 2))))
run_case("valid tag: garbage frame", after_ok(lambda c, s, rid: (
    s.sendall(c.record(frame(b"\x93\xc1\xc1\xc1"))), hang(s, 2))))
run_case("valid tag: frame length 0", after_ok(lambda c, s, rid: (
    s.sendall(c.record(b"\0\0\0\0")), hang(s, 2))))
run_case("valid tag: frame length 0xffffffff", after_ok(lambda c, s, rid: (
    s.sendall(c.record(b"\xff\xff\xff\xff" + b"\0" * 40)), hang(s, 3))))
run_case("valid tag: frame over max_frame (2 MiB)", after_ok(lambda c, s, rid: (
    s.sendall(c.record(struct.pack(">I", 2 << 20) + b"\x93")), hang(s, 3))))
run_case("valid tag: reply with a wrong request id", after_ok(lambda c, s, rid: (
    s.sendall(c.record(c.reply(rid + 1000))), hang(s, 2))))
# Not 0x00: a lone zero byte after the reply may be the start of a SHUTTING_DOWN, which
# libsessd lets pass (libsessd(3), RECONNECTION).
run_case("valid tag: reply, then extra bytes", after_ok(lambda c, s, rid: (
    s.sendall(c.record(c.reply(rid) + b"\x01")), hang(s, 2))))
run_case("valid tag: error status without a str message", after_ok(lambda c, s, rid: (
    s.sendall(c.record(c.reply(rid, 2, NIL))), hang(s, 2))))
run_case("valid tag: huge declared map count in result", after_ok(lambda c, s, rid: (
    s.sendall(c.record(frame(mp_array([mp_uint(rid), mp_uint(0)]) + b"\xdf\xff\xff\xff\xff"))),
    hang(s, 2))), cmd=("stats",))
run_case("reply in 1-byte records (control)", after_ok(lambda c, s, rid: (
    s.sendall(b"".join(c.record(bytes([b])) for b in c.reply(rid))), time.sleep(0.2))),
    want_rc=0)
run_case("200k empty-ish records: 1-byte records of a 200 KB GET", after_ok(
    lambda c, s, rid: (s.sendall(b"".join(
        c.record(bytes([b])) for b in c.reply(rid, 0, mp_bin(b"z" * 200000)))),
        time.sleep(0.5))), cmd=("get", "x"), want_rc=0, max_s=30, timeout_ms=20000)
run_case("reply trickled past the timeout (1 byte/100ms)", after_ok(lambda c, s, rid: (
    trickle(s, c.record(c.reply(rid)), 0.1))))
run_case("records forever (1 KB records of a frame that never ends)", after_ok(
    lambda c, s, rid: (s.sendall(c.record(struct.pack(">I", 1 << 20))),
                       [s.sendall(c.record(b"\0" * 1024)) for _ in range(1023)],
                       hang(s, 3))))

print("%d cases, %d failed" % (len(results), results.count(False)))
sys.exit(0 if all(results) else 1)
