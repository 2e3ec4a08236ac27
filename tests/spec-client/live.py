"""The live half: a real sessd, its replies checked against what PROTOCOL.md says."""

import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time

from sessdwire import (Conn, Closed, Malformed, MapItems, Str, Raw, pack, unpack, parse_reply, tag,
                       seal_record, STATUS_NUM, TTL_MAX, x25519_base, psk_of, client_proof)
from vectors_check import classify, decode_request

SECRET = b"spec65-shared-secret-0123456789abcdef"
ADMIN = b"spec65-admin-secret-fedcba9876543210"
BAD_EXITS = []


class Daemon:
    def __init__(self, sessd, *args, auth=SECRET, admin=ADMIN, tcp=True):
        self.dir = tempfile.mkdtemp(prefix="spec65-")
        self.sock = os.path.join(self.dir, "s.sock")
        cmd = [sessd, "--listen", "unix:" + self.sock, "--log-level", "error",
               "--ready-file", os.path.join(self.dir, "ready")]
        if tcp:
            cmd += ["--listen", "tcp://127.0.0.1:0"]
        for flag, val in (("--auth-file", auth), ("--admin-auth-file", admin)):
            if val is not None:
                path = os.path.join(self.dir, flag[2:])
                fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
                os.write(fd, val + b"\n")       # as `base64 > FILE` writes it
                os.close(fd)
                cmd += [flag, path]
        self.proc = subprocess.Popen(cmd + list(args))
        ready = os.path.join(self.dir, "ready")
        deadline = time.monotonic() + 10
        while not os.path.exists(ready):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("sessd did not start")
            time.sleep(0.02)
        self.tcp = None
        for line in open(ready).read().split():
            if line.startswith("tcp://"):
                host, port = line[6:].rsplit(":", 1)
                self.tcp = (host, int(port))
        self.unix = "unix:" + self.sock

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)
        # A sanitizer's report, or any crash, ends sessd with another status.
        if self.proc.returncode != 0:
            BAD_EXITS.append(self.proc.returncode)


def ended(c, timeout=30.0):
    """True if the server ends the stream (or resets it) within timeout with nothing more.

    The timeout bounds a hang only: each use waits for an end that must come, and a loaded
    machine stops sessd for a third of a second and more at a time."""
    c.sock.settimeout(timeout)
    try:
        while True:
            b = c.sock.recv(65536)
            if not b:
                return True
            c.inbuf += b
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def closing(t, name, c, rid, status):
    """Reads a closing reply and the end of the stream after it."""
    try:
        r = c.read_reply()
    except (Closed, ConnectionResetError) as e:
        t.ok(name, False, "no reply: %r" % e)
        return None
    t.ok(name, r.name == status and r.request_id == rid, "got %r, want %s id %d" % (r, status, rid))
    if not c.sealed:
        t.ok(name + " (then end of stream)", ended(c) and not c.inbuf, repr(c.inbuf[:40]))
    return r


def hello(d, kind="plain", secret=SECRET, addr=None):
    c = Conn(addr or d.unix)
    r = c.hello_sealed(secret) if kind == "sealed" else c.hello_plain(secret)
    assert r.name == "OK", r
    return c


def run_ci(sessd, vectors_path, t):
    d = Daemon(sessd)
    try:
        check_vectors_live(d, vectors_path, t)
        check_hello(d, t)
    finally:
        d.stop()
    t.eq("sessd exited 0 each time", BAD_EXITS, [])


def run(sessd, vectors_path, t):
    d = Daemon(sessd)
    try:
        check_hello(d, t)
        check_vectors_live(d, vectors_path, t)
        for kind, addr in (("plain", d.unix), ("sealed", d.tcp)):
            check_sessions(d, t, kind, addr)
            check_flashes(d, t, kind, addr)
            check_admin(d, t, kind, addr)
        check_limits(d, t)
        check_sealed(d, t)
        check_retire(d, t)
        check_pipeline(d, t)
    finally:
        d.stop()
    check_other_configs(sessd, t)
    check_edges(sessd, t)
    check_semantics(sessd, t)
    check_transport(sessd, t)
    check_hello_order(sessd, t)
    check_memory_and_restart(sessd, t)
    check_io_error(sessd, t)
    check_stop_midway(sessd, t)
    t.eq("sessd exited 0 each time", BAD_EXITS, [])


# --- HELLO ------------------------------------------------------------------------------

def check_hello(d, t):
    for where, addr in (("unix", d.unix), ("tcp", d.tcp)):
        c = Conn(addr)
        r = c.hello_plain(SECRET)
        t.eq("hello %s plain: OK" % where, r.name, "OK")
        m = r.result
        t.ok("hello: map has str keys, each once", all(isinstance(k, Str) for k in m.keys())
             and len(set(m.keys())) == len(m))
        t.eq("hello: version", m.get("version"), 1)
        t.ok("hello: server str", isinstance(m.get("server"), Str))
        sid = m.get("server_id")
        t.ok("hello: server_id 32 hex", isinstance(sid, Str) and len(sid) == 32
             and all(ch in b"0123456789abcdef" for ch in sid), repr(sid))
        t.eq("hello: max_frame default", m.get("max_frame"), 1048576)
        t.eq("hello: max_data", m.get("max_data"), 1048576 - 16)
        for k, want in (("max_id", 128), ("max_namespace", 64), ("max_flash_type", 64),
                        ("max_list", 1000)):
            t.eq("hello: " + k, m.get(k), want)
        t.eq("hello: auth true", m.get("auth"), True)
        t.eq("hello: admin false with the shared secret", m.get("admin"), False)
        t.eq("hello: no kx when plain", m.get("kx"), None)
        c.close()
    c = Conn(d.unix)
    t.eq("hello plain with the admin secret: admin", c.hello_plain(ADMIN).result.get("admin"), True)
    c.close()
    # Every HELLO that fails closes, with the request's id.
    for name, auth in (("wrong secret", b"x" * 37), ("nil auth", None),
                       ("secret with its trailing newline", SECRET + b"\n"),
                       ("secret as str", None), ("int auth", 7)):
        if name == "secret as str":
            c = Conn(d.unix)
            t.eq("hello secret as str: OK", c.hello_plain(Str(SECRET)).name, "OK")
            c.close()
            continue
        c = Conn(d.unix)
        rid = c.request("HELLO", 1, Str(b"x"), auth)
        closing(t, "hello %s: AUTH_FAILED" % name, c, rid, "AUTH_FAILED")
        c.close()
    c = Conn(d.unix)
    rid = c.request("HELLO", 2, Str(b"x"), SECRET)
    closing(t, "hello version 2: BAD_VERSION", c, rid, "BAD_VERSION")
    c = Conn(d.unix)
    rid = c.request("HELLO", 2, Str(b"x"), b"wrong")
    r = closing(t, "hello version 2 and a wrong secret: BAD_VERSION?", c, rid, "BAD_VERSION")
    c = Conn(d.unix)
    rid = c.request("GET", None, Str(b"abc"))
    closing(t, "request before HELLO: NOT_READY", c, rid, "NOT_READY")
    c = Conn(d.unix)
    rid = c.request(0x7F, 1)
    closing(t, "unknown op before HELLO: NOT_READY", c, rid, "NOT_READY")
    c = Conn(d.unix)
    c.send_body(pack([0x10, 77, None, 5]))
    closing(t, "malformed GET before HELLO: BAD_REQUEST with its id", c, 77, "BAD_REQUEST")
    c = Conn(d.unix)
    c.send_body(b"\xc0" * 4097)
    closing(t, "4097-byte body before HELLO: TOO_LARGE id 0", c, 0, "TOO_LARGE")
    c = Conn(d.unix)
    c.send_body(pack([1, 9, 1, Str(b"n"), SECRET, b"pad" * 1400]))
    closing(t, "HELLO of 4096+ bytes before HELLO: TOO_LARGE", c, 0, "TOO_LARGE")
    c = hello(d)
    rid = c.request("HELLO", 1, Str(b"x"), SECRET)
    closing(t, "second HELLO: BAD_REQUEST", c, rid, "BAD_REQUEST")
    # A HELLO then a frame over 4096 in the same write: held to max_frame, not 4096.
    c = Conn(d.unix)
    b1 = pack([1, 1, 1, Str(b"x"), SECRET])
    b2 = pack([2, 2, b"p" * 10000])
    c.sock.sendall(struct.pack(">I", len(b1)) + b1 + struct.pack(">I", len(b2)) + b2)
    r1 = c._take_hello(c.read_reply())
    r2 = c.read_reply()
    t.ok("HELLO + 10 kB PING in one write: both answered", r1.name == "OK" and r2.name == "OK"
         and r2.result == b"p" * 10000)
    c.close()
    # Client name: 64 bytes with an identity is fine.
    c = Conn(d.unix)
    rid = c.request("HELLO", 1, Str(b"n" * 44 + b"\0" + b"i" * 19), SECRET)
    t.eq("hello 64-byte client name: OK", c.read_reply().name, "OK")
    c.close()


# --- the vectors, sent to the server ---------------------------------------------------------

def check_vectors_live(d, path, t):
    vs = json.load(open(path))
    shared = hello(d, "plain", ADMIN)
    for v in vs:
        if v["kind"] != "request":
            continue
        frame = bytes.fromhex(v["hex"])
        nm = v["name"]
        if "request" in v and v["request"]["op"] == 1:
            c = Conn(d.unix)
            c.sock.sendall(frame)
            r = c.read_reply()
            want = "BAD_VERSION" if "BAD_VERSION" in nm else "AUTH_FAILED"
            t.eq("live vector: " + nm, r.name, want)
            c.close()
            continue
        if "request" in v:
            shared.sock.sendall(frame)
            r = shared.read_reply()
            t.ok("live vector answered, not BAD_REQUEST: " + nm,
                 r.name not in ("BAD_REQUEST", "TOO_LARGE", "UNKNOWN_OP")
                 and r.request_id == int(v["request"]["request_id"]), repr(r))
            continue
        mf = v.get("max_frame", 1048576)
        c = Conn(d.unix)
        if mf == 1048576:
            c.hello_plain(SECRET)
        want, rid = classify(frame, mf)
        c.sock.sendall(frame)
        try:
            r = c.read_reply()
            t.ok("live invalid vector: " + nm, r.name == v["error"] and r.request_id == rid,
                 "%r, want %s id %d" % (r, v["error"], rid))
        except Exception as e:
            t.ok("live invalid vector: " + nm, False, repr(e))
        c.close()
    shared.close()


# --- operations ------------------------------------------------------------------------------

def uniq(prefix):
    return Str(("%s-%d-%d" % (prefix, os.getpid(), time.monotonic_ns())).encode())


def check_sessions(d, t, kind, addr):
    p = "%s: " % kind
    c = hello(d, kind, addr=addr)
    ns = uniq("ns")
    sid = Str(b"abc")
    r = c.call("GET", ns, sid)
    t.ok(p + "GET missing: NOT_FOUND nil", r.name == "NOT_FOUND" and r.result is None)
    t.eq(p + "LOAD missing", c.call("LOAD", ns, sid).name, "NOT_FOUND")
    t.eq(p + "TTL missing", c.call("TTL", ns, sid).name, "NOT_FOUND")
    t.eq(p + "TOUCH missing", c.call("TOUCH", ns, sid, 1000).name, "NOT_FOUND")
    t.eq(p + "DESTROY missing", c.call("DESTROY", ns, sid).name, "NOT_FOUND")
    t.eq(p + "SET_IF missing", c.call("SET_IF", ns, sid, b"x", 1000, tag(b"")).name, "NOT_FOUND")
    t.eq(p + "TOUCH_IF missing", c.call("TOUCH_IF", ns, sid, 1000, tag(b"")).name, "NOT_FOUND")
    t.eq(p + "COUNT before", c.call("COUNT", ns).result, 0)
    r = c.call("SET", ns, sid, Str(b'{"a":1}'), 60000)
    t.ok(p + "SET (data as str): OK nil", r.name == "OK" and r.result is None)
    r = c.call("GET", ns, b"abc")
    t.ok(p + "GET by bin id: the str id's session, data as bin",
         r.name == "OK" and type(r.result) is bytes and r.result == b'{"a":1}', repr(r))
    r = c.call("LOAD", ns, sid)
    t.ok(p + "LOAD: [data, 0]", r.name == "OK" and r.result == [b'{"a":1}', 0]
         and type(r.result[0]) is bytes, repr(r))
    r = c.call("TTL", ns, sid)
    t.ok(p + "TTL: 1..60000", r.name == "OK" and 1 <= r.result <= 60000 and r.result > 55000, repr(r))
    t.eq(p + "TOUCH", c.call("TOUCH", ns, sid, 3600000).name, "OK")
    t.ok(p + "TTL after TOUCH", c.call("TTL", ns, sid).result > 3500000)
    # SET_IF / TOUCH_IF
    old = b'{"a":1}'
    r = c.call("SET_IF", ns, sid, b"new", 50000, tag(b"other"))
    t.eq(p + "SET_IF wrong tag: CONFLICT", r.name, "CONFLICT")
    t.ok(p + "CONFLICT changed nothing (data, expiry)", c.call("GET", ns, sid).result == old
         and c.call("TTL", ns, sid).result > 3500000)
    t.eq(p + "TOUCH_IF wrong tag: CONFLICT", c.call("TOUCH_IF", ns, sid, 5000, tag(b"o")).name, "CONFLICT")
    t.eq(p + "SET_IF right tag: OK", c.call("SET_IF", ns, sid, b"new", 50000, tag(old)).name, "OK")
    t.eq(p + "GET after SET_IF", c.call("GET", ns, sid).result, b"new")
    t.eq(p + "TOUCH_IF right tag: OK", c.call("TOUCH_IF", ns, sid, 5000, tag(b"new")).name, "OK")
    t.ok(p + "TTL after TOUCH_IF <= 5000", c.call("TTL", ns, sid).result <= 5000)
    t.eq(p + "SET empty data", c.call("SET", ns, sid, b"", 60000).name, "OK")
    t.eq(p + "SET_IF with the empty data's tag", c.call("SET_IF", ns, sid, b"e", 60000,
                                                         bytes.fromhex("786a02f742015903c6c6fd852552d272")).name, "OK")
    t.eq(p + "COUNT 1", c.call("COUNT", ns).result, 1)
    t.eq(p + "DESTROY", c.call("DESTROY", ns, sid).name, "OK")
    t.eq(p + "GET after DESTROY", c.call("GET", ns, sid).name, "NOT_FOUND")
    t.eq(p + "COUNT 0", c.call("COUNT", ns).result, 0)
    # ttl bounds
    t.eq(p + "SET ttl 10 years", c.call("SET", ns, sid, b"x", TTL_MAX).name, "OK")
    t.ok(p + "TTL of 10 years", c.call("TTL", ns, sid).result > TTL_MAX - 60000)
    # Expiry
    t.eq(p + "SET ttl 50 ms", c.call("SET", ns, Str(b"short"), b"x", 50).name, "OK")
    time.sleep(0.12)
    t.eq(p + "GET after expiry: NOT_FOUND", c.call("GET", ns, Str(b"short")).name, "NOT_FOUND")
    # PING
    r = c.call("PING")
    t.ok(p + "PING: nil", r.name == "OK" and r.result is None)
    r = c.call("PING", b"\x00\xff")
    t.ok(p + "PING bin payload: same bytes bin", r.result == b"\x00\xff" and type(r.result) is bytes)
    r = c.call("PING", Str(b"hi"))
    t.ok(p + "PING str payload: comes back bin", r.result == b"hi" and type(r.result) is bytes)
    # unknown op, id kept, connection open
    r = c.call(0x7E, Str(b"anything"), [1, {"k": None}])
    t.eq(p + "unknown op: UNKNOWN_OP", r.name, "UNKNOWN_OP")
    t.eq(p + "still open after UNKNOWN_OP", c.call("PING").name, "OK")
    rid = c.request("PING", rid=(1 << 64) - 1)
    t.eq(p + "request id 2^64-1 echoed", c.read_reply().request_id, (1 << 64) - 1)
    rid = c.request("PING", rid=0)
    t.eq(p + "request id 0 echoed", c.read_reply().request_id, 0)
    # arguments wrong: BAD_REQUEST with the request's id, closes
    rid = c.request("GET", ns)
    closing(t, p + "GET with one argument: BAD_REQUEST", c, rid, "BAD_REQUEST")
    if kind == "sealed":
        t.ok(p + "then the stream ends", ended(c))
    c.close()


def check_flashes(d, t, kind, addr):
    p = "%s: " % kind
    c = hello(d, kind, addr=addr)
    ns = uniq("fl")
    sid = Str(b"f1")
    r = c.call("FLASH_POP", ns, sid, None)
    t.eq(p + "FLASH_POP missing session: NOT_FOUND", r.name, "NOT_FOUND")
    t.eq(p + "FLASH_PUSH_EXISTING to none: NOT_FOUND nil",
         (c.call("FLASH_PUSH_EXISTING", ns, sid, Str(b"info"), Str(b"m"), 60000).name), "NOT_FOUND")
    t.eq(p + "COUNT after refused push: 0", c.call("COUNT", ns).result, 0)
    t.eq(p + "FLASH_PUSH creates: 1", c.call("FLASH_PUSH", ns, sid, Str(b"info"), Str(b"one"), 60000).result, 1)
    t.eq(p + "FLASH_PUSH: 2", c.call("FLASH_PUSH", ns, sid, Str(b"info"), b"two", 60000).result, 2)
    t.eq(p + "FLASH_PUSH other type: 1", c.call("FLASH_PUSH", ns, sid, Str(b"err"), Str(b""), 60000).result, 1)
    t.eq(p + "flash-only: GET NOT_FOUND", c.call("GET", ns, sid).name, "NOT_FOUND")
    t.eq(p + "flash-only: LOAD NOT_FOUND", c.call("LOAD", ns, sid).name, "NOT_FOUND")
    t.eq(p + "flash-only: SET_IF NOT_FOUND", c.call("SET_IF", ns, sid, b"x", 1000, tag(b"")).name, "NOT_FOUND")
    t.eq(p + "flash-only: TOUCH_IF NOT_FOUND", c.call("TOUCH_IF", ns, sid, 1000, tag(b"")).name, "NOT_FOUND")
    t.eq(p + "flash-only: FLASH_PUSH_EXISTING NOT_FOUND",
         c.call("FLASH_PUSH_EXISTING", ns, sid, Str(b"info"), b"x", 1000).name, "NOT_FOUND")
    t.eq(p + "flash-only: TTL OK", c.call("TTL", ns, sid).name, "OK")
    t.eq(p + "flash-only: COUNT 1", c.call("COUNT", ns).result, 1)
    t.eq(p + "flash-only: TOUCH OK", c.call("TOUCH", ns, sid, 60000).name, "OK")
    r = c.call("DESTROY_IF_FLASH", ns, sid, Str(b"info"), b"two")
    t.eq(p + "DESTROY_IF_FLASH not the oldest: CONFLICT", r.name, "CONFLICT")
    r = c.call("DESTROY_IF_FLASH", ns, sid, Str(b"none"), b"two")
    t.eq(p + "DESTROY_IF_FLASH empty queue: CONFLICT", r.name, "CONFLICT")
    r = c.call("FLASH_POP", ns, sid, None)
    t.ok(p + "FLASH_POP nil: map, types by oldest, formats kept",
         r.name == "OK" and isinstance(r.result, MapItems)
         and [(bytes(k), v) for k, v in r.result] == [(b"info", [b"one", b"two"]), (b"err", [b""])]
         and type(r.result[0][1][0]) is Str and type(r.result[0][1][1]) is bytes
         and type(r.result[1][1][0]) is Str, repr(r))
    r = c.call("FLASH_POP", ns, sid, None)
    t.ok(p + "FLASH_POP nil emptied: {}", r.name == "OK" and r.result == [] and isinstance(r.result, MapItems), repr(r))
    r = c.call("FLASH_POP", ns, sid, Str(b"info"))
    t.ok(p + "FLASH_POP type emptied: []", r.name == "OK" and r.result == [] and not isinstance(r.result, MapItems))
    t.eq(p + "emptied flash-only still counted", c.call("COUNT", ns).result, 1)
    # With data
    s2 = Str(b"f2")
    c.call("SET", ns, s2, b"d", 60000)
    t.eq(p + "FLASH_PUSH_EXISTING with data: 1", c.call("FLASH_PUSH_EXISTING", ns, s2, Str(b"t"), b"a", 1000).result, 1)
    t.eq(p + "LOAD counts flashes", c.call("LOAD", ns, s2).result, [b"d", 1])
    t.ok(p + "push's shorter ttl did not shorten", c.call("TTL", ns, s2).result > 50000)
    c.call("FLASH_PUSH", ns, s2, Str(b"t"), b"b", 120000)
    t.ok(p + "push's longer ttl lengthened", c.call("TTL", ns, s2).result > 110000)
    r = c.call("FLASH_POP", ns, s2, Str(b"t"))
    t.eq(p + "FLASH_POP type: oldest first", r.result, [b"a", b"b"])
    t.eq(p + "data untouched by flashes", c.call("GET", ns, s2).result, b"d")
    # DESTROY_IF_FLASH: str and bin compare as bytes
    tok = os.urandom(16)
    t.eq(p + "lock push: 1", c.call("FLASH_PUSH", ns, Str(b"lock"), Str(b"move"), tok, 30000).result, 1)
    t.eq(p + "second push: 2", c.call("FLASH_PUSH", ns, Str(b"lock"), Str(b"move"), b"other", 30000).result, 2)
    r = c.call("DESTROY_IF_FLASH", ns, Str(b"lock"), Str(b"move"), Str(tok))
    t.eq(p + "DESTROY_IF_FLASH token (str vs bin): OK nil", (r.name, r.result), ("OK", None))
    t.eq(p + "lock gone", c.call("TTL", ns, Str(b"lock")).name, "NOT_FOUND")
    t.eq(p + "DESTROY_IF_FLASH again: NOT_FOUND",
         c.call("DESTROY_IF_FLASH", ns, Str(b"lock"), Str(b"move"), tok).name, "NOT_FOUND")
    # 64 types
    s3 = Str(b"f3")
    ok = all(c.call("FLASH_PUSH", ns, s3, Str(b"t%02d" % i), b"", 60000).name == "OK" for i in range(64))
    t.ok(p + "64 flash types", ok)
    t.eq(p + "65th flash type: LIMIT", c.call("FLASH_PUSH", ns, s3, Str(b"t64"), b"", 60000).name, "LIMIT")
    t.eq(p + "a 64th type's queue still takes more", c.call("FLASH_PUSH", ns, s3, Str(b"t63"), b"", 60000).result, 2)
    t.eq(p + "still open after LIMIT", c.call("PING").name, "OK")
    c.close()


def check_admin(d, t, kind, addr):
    p = "%s: " % kind
    app = hello(d, kind, SECRET, addr)
    adm = hello(d, kind, ADMIN, addr)
    t.eq(p + "admin: true for the admin secret", adm.hello.get("admin"), True)
    ns = uniq("adm")
    for i in range(5):
        app.call("SET", ns, Str(b"s%d" % i), b"x", 60000 + i)
    app.call("FLASH_PUSH", ns, Str(b"fo"), Str(b"t"), b"m", 60000)
    for op, args in (("LIST", (ns, 0, 10)), ("NAMESPACES", (0, 10)), ("CLEAR", (ns,))):
        r = app.call(op, *args)
        t.ok(p + op + " without admin: FORBIDDEN str", r.name == "FORBIDDEN" and isinstance(r.result, Str))
    t.eq(p + "open after FORBIDDEN", app.call("COUNT", ns).result, 6)
    seen, cur, pages = [], 0, 0
    while True:
        r = adm.call("LIST", ns, cur, 2)
        nxt, entries = r.result
        for e in entries:
            t.ok(p + "LIST entry [bin id, ttl]", type(e[0]) is bytes and 1 <= e[1] <= 60004)
            seen.append(e[0])
        pages += 1
        cur = nxt
        if cur == 0 or pages > 100:
            break
    t.eq(p + "LIST by 2 finds all 6", sorted(set(seen)), sorted([b"s%d" % i for i in range(5)] + [b"fo"]))
    r = adm.call("LIST", ns, 0, 0)
    t.ok(p + "LIST limit 0 clamped to 1: at most 1 entry", r.name == "OK" and len(r.result[1]) <= 1)
    r = adm.call("LIST", ns, 12345678901234, 1000)
    t.eq(p + "LIST unknown cursor: not an error", r.name, "OK")
    found, cur = {}, 0
    for _ in range(1000):
        r = adm.call("NAMESPACES", cur, 1000)
        for name, n in r.result[1]:
            t.ok(p + "NAMESPACES name is str", isinstance(name, Str))
            found[bytes(name)] = n
        cur = r.result[0]
        if cur == 0:
            break
    t.eq(p + "NAMESPACES: our namespace and its count", found.get(bytes(ns)), 6)
    st = app.call("STATS", ns).result
    for k in ("sessions", "unread", "evicted_total", "bytes", "flashes"):
        t.ok(p + "STATS ns has " + k, isinstance(st.get(k), int), repr(st))
    t.eq(p + "STATS ns sessions", st.get("sessions"), 6)
    t.eq(p + "STATS ns flashes", st.get("flashes"), 1)
    t.eq(p + "STATS ns unread (6 created, none read)", st.get("unread"), 6)
    glob = app.call("STATS", None).result
    keys = ("sessions unread evicted_total drop_unread namespaces bytes max_bytes expired_total "
            "connections connections_total connections_displaced_total connections_refused_total "
            "max_connections max_client_bytes requests_total uptime_ms loop_stall_max_us "
            "loop_stalls_over_1ms loop_stalls_over_2ms loop_stalls_over_10ms client_bytes "
            "client_bytes_peak client_evictions_total no_memory_total io_errors_total "
            "forbidden_total retired_total writable malformed_total hello_deferred_total "
            "hello_abandoned_total held_over_total cpu_deferred_total reads_deferred_total").split()
    missing = [k for k in keys if not isinstance(glob.get(k), int) or glob.get(k) < 0]
    t.ok(p + "STATS nil: every key the spec lists, uint", not missing, repr(missing))
    extra = [bytes(k) for k in glob.keys() if bytes(k).decode() not in keys]
    print("  (STATS keys the spec does not list: %r)" % extra) if extra else None
    t.ok(p + "STATS nil: values uint", all(isinstance(v, int) and v >= 0 for _, v in glob))
    empty = app.call("STATS", Str(b"no-such-namespace-spec65")).result
    t.eq(p + "STATS of a missing namespace: zeros", empty.get("sessions"), 0)
    t.eq(p + "CLEAR: 6", adm.call("CLEAR", ns).result, 6)
    t.eq(p + "COUNT after CLEAR", app.call("COUNT", ns).result, 0)
    r = adm.call("NAMESPACES", 0, 1000)
    t.ok(p + "cleared namespace gone", all(bytes(nm) != bytes(ns) for nm, _ in r.result[1]) or r.result[0] != 0)
    app.close()
    adm.close()


def check_limits(d, t):
    c = hello(d)
    mf, md = c.max_frame, c.max_data
    ns = None
    big = os.urandom(md)
    r = c.call("SET", ns, Str(b"a"), big, 100)
    t.eq("SET of max_data with a 1-byte id and ttl<128: OK", r.name, "OK")
    c.call("SET", ns, Str(b"big"), big, 60000)
    r = c.call("GET", ns, Str(b"big"))
    t.ok("GET of max_data: OK, reply within max_frame", r.name == "OK" and r.result == big)
    r = c.call("LOAD", ns, Str(b"big"))
    t.eq("LOAD of data over max_data - 10: LIMIT", r.name, "LIMIT")
    c.call("SET", ns, Str(b"big"), big[:md - 10], 60000)
    t.eq("LOAD of max_data - 10: OK", c.call("LOAD", ns, Str(b"big")).name, "OK")
    r = c.call("SET", ns, Str(b"a"), big + b"x", 100)
    t.eq("SET of max_data + 1 in a frame within max_frame: LIMIT", r.name, "LIMIT")
    t.eq("open after LIMIT", c.call("PING").name, "OK")
    # flash bytes: max_frame / 2, each message type + msg + 5
    room = mf // 2
    r = c.call("FLASH_PUSH", ns, Str(b"fb"), Str(b"t"), b"m" * (room - 6), 60000)
    t.eq("flash message filling max_frame/2 exactly: OK", r.name, "OK")
    r = c.call("FLASH_PUSH", ns, Str(b"fb"), Str(b"t"), b"", 60000)
    t.eq("one more empty message: LIMIT", r.name, "LIMIT")
    r = c.call("FLASH_PUSH", ns, Str(b"fb2"), Str(b"t"), b"m" * (room - 5), 60000)
    t.eq("flash message 1 byte over max_frame/2: LIMIT", r.name, "LIMIT")
    r = c.call("FLASH_POP", ns, Str(b"fb"), None)
    t.ok("full flash queue pops in one reply", r.name == "OK" and len(r.result[0][1][0]) == room - 6)
    # id and namespace lengths at the bound
    t.eq("id of 128 bytes", c.call("SET", Str(b"n" * 64), Str(b"i" * 128), b"x", 1000).name, "OK")
    # TOO_LARGE: a header over max_frame, then what was pipelined behind it fails
    c.sock.sendall(struct.pack(">I", mf + 1) + b"\0" * 100)
    closing(t, "frame over max_frame: TOO_LARGE id 0", c, 0, "TOO_LARGE")
    c.close()
    c = hello(d)
    body = pack([0x11, 5, None, Str(b"a"), big + b"0123456789abcdef", 100])
    assert len(body) > mf
    try:
        c.sock.sendall(struct.pack(">I", len(body)) + body + struct.pack(">I", 3) + pack([2, 6]))
    except (BrokenPipeError, ConnectionResetError):
        pass
    closing(t, "SET whose frame passes max_frame: TOO_LARGE, and the PING behind it is not answered",
            c, 0, "TOO_LARGE")
    c.close()
    c = hello(d)
    c.send_body(pack([2, 8]) + b"\x00")
    closing(t, "trailing byte: BAD_REQUEST with the id", c, 8, "BAD_REQUEST")
    c = hello(d)
    c.sock.sendall(b"\0\0\0\0")
    closing(t, "length 0: BAD_REQUEST id 0", c, 0, "BAD_REQUEST")
    c = hello(d)
    deep = []
    for _ in range(15):
        deep = [deep]
    c.send_body(pack([0x7F, 3, deep]))
    closing(t, "17 levels in an unknown op's argument: BAD_REQUEST", c, 3, "BAD_REQUEST")
    c = hello(d)
    deep = []
    for _ in range(14):
        deep = [deep]
    t.eq("16 levels in an unknown op's argument: UNKNOWN_OP", c.call(0x7F, deep).name, "UNKNOWN_OP")
    c.close()


def check_sealed(d, t):
    c = Conn(d.tcp)
    r = c.hello_sealed(SECRET)
    t.ok("sealed HELLO: OK, auth true, proof checked", r.name == "OK" and c.sealed)
    t.eq("sealed: max_frame", c.max_frame, 1048576)
    # several frames in one record, one frame over several records
    f1 = pack([2, 10])
    f2 = pack([0x11, 11, None, Str(b"sl"), b"y" * 70000, 60000])
    stream = struct.pack(">I", len(f1)) + f1 + struct.pack(">I", len(f2)) + f2
    c.send_bytes(stream)      # 70 kB: two records, the first holds the PING and part of the SET
    t.eq("sealed: two frames across records: PING", c.read_reply().request_id, 10)
    t.eq("sealed: two frames across records: SET", c.read_reply().name, "OK")
    pieces = struct.pack(">I", 3) + pack([2, 12])
    for ch in pieces:         # one byte a record
        c.send_bytes(bytes([ch]))
    t.eq("sealed: a frame in 1-byte records", c.read_reply().request_id, 12)
    r = c.call("GET", None, Str(b"sl"))
    t.ok("sealed: 70 kB reply over several records", r.result == b"y" * 70000)
    # a replayed record
    rec = seal_record(c.key_c2s, c.n_out, struct.pack(">I", 3) + pack([2, 13]))
    c.n_out += 1
    c.sock.sendall(rec + rec)
    t.eq("sealed: the record once: answered", c.read_reply().request_id, 13)
    r = c.read_reply()
    t.ok("sealed: the record replayed: BAD_REQUEST id 0, sealed", r.name == "BAD_REQUEST" and r.request_id == 0, repr(r))
    t.ok("sealed: then the stream ends", ended(c))
    c.close()
    # a record changed
    c = hello(d, "sealed", addr=d.tcp)
    rec = bytearray(seal_record(c.key_c2s, 0, struct.pack(">I", 3) + pack([2, 1])))
    rec[6] ^= 1
    c.sock.sendall(bytes(rec))
    r = c.read_reply()
    t.ok("sealed: a changed record: BAD_REQUEST id 0", r.name == "BAD_REQUEST" and r.request_id == 0)
    c.close()
    # a record length under 17
    c = hello(d, "sealed", addr=d.tcp)
    c.sock.sendall(struct.pack(">I", 16) + b"\0" * 16)
    r = c.read_reply()
    t.ok("sealed: record length 16: BAD_REQUEST id 0", r.name == "BAD_REQUEST" and r.request_id == 0)
    c.close()
    c = hello(d, "sealed", addr=d.tcp)
    c.sock.sendall(struct.pack(">I", 65553))
    r = c.read_reply()
    t.ok("sealed: record length 65553: BAD_REQUEST id 0", r.name == "BAD_REQUEST" and r.request_id == 0)
    c.close()
    # a record moved to another connection
    a = hello(d, "sealed", addr=d.tcp)
    b = hello(d, "sealed", addr=d.tcp)
    rec = seal_record(a.key_c2s, 0, struct.pack(">I", 3) + pack([2, 1]))
    b.sock.sendall(rec)
    r = b.read_reply()
    t.ok("sealed: a record moved to another connection: BAD_REQUEST", r.name == "BAD_REQUEST")
    t.eq("sealed: the connection it came from still works", a.call("PING").name, "OK")
    a.close()
    b.close()
    # a replayed HELLO is answered, with fresh keys
    c_sk = os.urandom(32)
    a = Conn(d.tcp)
    a.hello_sealed(SECRET, c_sk=c_sk)
    b = Conn(d.tcp)
    b.sock.sendall(struct.pack(">I", len(a.last_hello_body)) + a.last_hello_body)
    r = b.read_reply()
    t.ok("sealed: a replayed HELLO is answered, another s_pk", r.name == "OK"
         and r.result.get("kx").get("key") != a.s_pk)
    a.close()
    b.close()
    # failures of the exchange
    psk = psk_of(SECRET)
    c_pk = x25519_base(c_sk)
    good = client_proof(psk, c_pk)
    for name, auth in (("wrong secret", {"kx": c_pk, "proof": client_proof(psk_of(b"nope" * 5), c_pk)}),
                       ("third key", {"kx": c_pk, "proof": good, "x": b""}),
                       ("bin key", {b"kx": c_pk, "proof": good}),
                       ("short kx", {"kx": c_pk[:31], "proof": good}),
                       ("proof as str", {"kx": c_pk, "proof": Str(good)}),
                       ("low-order key", {"kx": b"\0" * 32, "proof": client_proof(psk, b"\0" * 32)}),
                       ("kx twice", Raw(b"\x82" + pack(Str(b"kx")) + pack(c_pk) + pack(Str(b"kx")) + pack(c_pk))),
                       ("proof twice", Raw(b"\x82" + pack(Str(b"proof")) + pack(good) + pack(Str(b"proof")) + pack(good))),
                       ("a nil value", {"kx": c_pk, "proof": None})):
        if auth is None:
            continue
        c = Conn(d.tcp)
        rid = c.request("HELLO", 1, Str(b"x"), auth)
        closing(t, "sealed HELLO, %s: AUTH_FAILED in the clear" % name, c, rid, "AUTH_FAILED")
        c.close()
    c = Conn(d.unix)
    t.eq("sealed with the admin secret: admin true", c.hello_sealed(ADMIN).result.get("admin"), True)
    t.eq("sealed admin: LIST", c.call("LIST", None, 0, 1).name, "OK")
    c.close()


def check_retire(d, t):
    a = hello(d, "sealed", addr=d.tcp)
    b = hello(d, "plain")
    r = b.call("RETIRE", a.s_pk)
    t.ok("RETIRE an open sealed connection: true", r.name == "OK" and r.result is True, repr(r))
    try:
        a.sock.settimeout(3)
        rest = a.sock.recv(4096)
        what = "end of stream" if not rest else "bytes: %s" % rest[:40].hex()
    except ConnectionResetError:
        what = "reset"
    except socket.timeout:
        what = "nothing in 3 s"
    print("  (what a retired connection sees: %s)" % what)
    t.ok("RETIRE: the retired connection ends", what in ("end of stream", "reset") or what.startswith("bytes"), what)
    r = b.call("RETIRE", a.s_pk)
    t.ok("RETIRE again: false", r.name == "OK" and r.result is False)
    r = b.call("RETIRE", os.urandom(32))
    t.ok("RETIRE an unknown key: false", r.result is False)
    c = hello(d, "sealed", addr=d.tcp)
    rid = c.request("RETIRE", c.s_pk)
    r = c.read_reply()
    t.ok("RETIRE of its own connection: BAD_REQUEST with its id", r.name == "BAD_REQUEST" and r.request_id == rid, repr(r))
    c.close()
    rid = b.request("RETIRE", os.urandom(31))
    closing(t, "RETIRE a 31-byte key: BAD_REQUEST", b, rid, "BAD_REQUEST")
    b.close()


def check_pipeline(d, t):
    for kind, addr in (("plain", d.unix), ("sealed", d.tcp)):
        c = hello(d, kind, addr=addr)
        ns = uniq("pipe")
        stream = b""
        n = 3000
        for i in range(n):
            op = [[0x11, i, ns, Str(b"k%d" % (i % 50)), b"v%d" % i, 60000],
                  [0x10, i, ns, Str(b"k%d" % (i % 50))],
                  [0x20, i, ns, Str(b"k%d" % (i % 50)), Str(b"t"), b"m", 60000]][i % 3]
            body = pack(op)
            stream += struct.pack(">I", len(body)) + body
        c.send_bytes(stream)
        ids = []
        for i in range(n):
            ids.append(c.read_reply().request_id)
        t.ok("%s: 3000 pipelined requests answered in order" % kind, ids == list(range(n)))
        c.close()


def check_other_configs(sessd, t):
    # No secret: any plain auth in; a key exchange refused; auth nil in the reply.
    d = Daemon(sessd, auth=None, admin=None)
    try:
        for auth in (None, b"anything", Str(b"")):
            c = Conn(d.unix)
            r = c.hello_plain(auth)
            t.ok("no secret: plain %r let in" % (auth,), r.name == "OK")
            if auth is None:
                t.ok("no secret: reply's auth is nil (key present)", "auth" in [bytes(k).decode() for k in r.result.keys()]
                     and r.result.get("auth") is None, repr(r.result))
                t.eq("no secret: admin true", r.result.get("admin"), True)
            c.close()
        c = Conn(d.unix)
        c_sk = os.urandom(32)
        c_pk = x25519_base(c_sk)
        rid = c.request("HELLO", 1, Str(b"x"), {"kx": c_pk, "proof": client_proof(psk_of(SECRET), c_pk)})
        closing(t, "no secret: a key exchange is AUTH_FAILED", c, rid, "AUTH_FAILED")
        c = Conn(d.unix)
        rid = c.request("HELLO", 1, Str(b"x"), 5)
        closing(t, "no secret: an int auth is AUTH_FAILED", c, rid, "AUTH_FAILED")
        # SHUTTING_DOWN on stop, plain and before HELLO
        a = hello(d, "plain", None)
        pre = Conn(d.unix)
        time.sleep(0.1)
        d.proc.send_signal(signal.SIGTERM)
        r = a.read_reply()
        t.ok("stop: SHUTTING_DOWN id 0", r.name == "SHUTTING_DOWN" and r.request_id == 0, repr(r))
        t.ok("stop: then end of stream", ended(a))
        try:
            r = pre.read_reply()
            t.ok("stop: before HELLO too, SHUTTING_DOWN", r.name == "SHUTTING_DOWN", repr(r))
        except Exception as e:
            t.ok("stop: before HELLO too, SHUTTING_DOWN", False, repr(e))
        d.proc.wait(10)
    finally:
        d.stop()
    # Admin secret only
    d = Daemon(sessd, auth=None, admin=ADMIN)
    try:
        c = Conn(d.unix)
        r = c.hello_plain(None)
        t.ok("admin only: nil lets an app in, admin false", r.name == "OK" and r.result.get("admin") is False, repr(r))
        print("  (admin only, nil: auth = %r)" % (r.result.get("auth"),))
        c.close()
        c = Conn(d.unix)
        r = c.hello_plain(b"not the admin secret")
        t.ok("admin only: any bin over Unix is let in as an app", r.name == "OK" and r.result.get("admin") is False, repr(r))
        c.close()
        c = Conn(d.unix)
        r = c.hello_plain(ADMIN)
        t.ok("admin only: the admin secret: admin true, auth true", r.name == "OK" and r.result.get("admin") is True
             and r.result.get("auth") is True, repr(r))
        c.close()
        c = Conn(d.tcp)
        r = c.hello_sealed(ADMIN)
        t.ok("admin only: sealed with the admin secret", r.name == "OK" and r.result.get("admin") is True)
        c.close()
    finally:
        d.stop()
    # --auth-plain no
    d = Daemon(sessd, "--auth-plain", "no", admin=None)
    try:
        c = Conn(d.unix)
        rid = c.request("HELLO", 1, Str(b"x"), SECRET)
        closing(t, "--auth-plain no: the right plain secret is AUTH_FAILED", c, rid, "AUTH_FAILED")
        c = Conn(d.unix)
        t.eq("--auth-plain no: sealed is let in", c.hello_sealed(SECRET).name, "OK")
        c.close()
    finally:
        d.stop()
    # hello timeout: plain closed without a reply; sealed answered: SHUTTING_DOWN sealed
    d = Daemon(sessd, "--hello-timeout", "1", admin=None)
    try:
        a = Conn(d.unix)
        b = Conn(d.tcp)
        b.hello_sealed(SECRET)
        t0 = time.monotonic()
        t.ok("hello timeout: closed, no reply", ended(a) and not a.inbuf, repr(a.inbuf))
        try:
            r = b.read_reply()
            t.ok("hello timeout, sealed HELLO answered and no record: SHUTTING_DOWN sealed id 0",
                 r.name == "SHUTTING_DOWN" and r.request_id == 0, repr(r))
        except Exception as e:
            t.ok("hello timeout, sealed HELLO answered and no record: SHUTTING_DOWN sealed id 0", False, repr(e))
    finally:
        d.stop()
    # max_frame from the option; a connection limit of 1
    d = Daemon(sessd, "--max-frame", "5000", "--max-connections", "1", admin=None)
    try:
        a = hello(d)
        t.eq("--max-frame 5000 announced", a.max_frame, 5000)
        t.eq("max_data = max_frame - 16", a.max_data, 4984)
        b = Conn(d.unix)
        try:
            r = b.read_reply()
            t.ok("at the limit: a newcomer gets BUSY id 0", r.name == "BUSY" and r.request_id == 0, repr(r))
        except Exception as e:
            t.ok("at the limit: a newcomer gets BUSY id 0", False, repr(e))
        a.close()
        b.close()
    finally:
        d.stop()


def check_edges(sessd, t):
    """The places where the spec left a question, probed."""
    d = Daemon(sessd, "--auth-grace", "1")
    try:
        # A body of exactly 4096 before HELLO is read (NOT_READY), not TOO_LARGE.
        c = Conn(d.unix)
        body = pack([2, 4, b"p" * (4096 - 6)])
        assert len(body) == 4096, len(body)
        c.send_body(body)
        closing(t, "4096-byte PING before HELLO: NOT_READY, not TOO_LARGE", c, 4, "NOT_READY")
        # A frame of exactly max_frame is taken.
        c = hello(d)
        body = pack([2, 5, b"p" * (c.max_frame - 8)])
        assert len(body) == c.max_frame
        r = c.call("PING", b"p" * (c.max_frame - 8))
        t.ok("a frame of exactly max_frame: answered", r.name == "OK" and len(r.result) == c.max_frame - 8)
        # LOAD bound: max_data - 9 is LIMIT
        md = c.max_data
        c.call("SET", None, Str(b"l9"), b"z" * (md - 9), 60000)
        t.eq("LOAD of max_data - 9: LIMIT", c.call("LOAD", None, Str(b"l9")).name, "LIMIT")
        # a huge opcode is UNKNOWN_OP, not BAD_REQUEST
        t.eq("opcode 2^40: UNKNOWN_OP", c.call(1 << 40).name, "UNKNOWN_OP")
        # LIST limit over 1000 clamps
        c2 = hello(d, "plain", ADMIN)
        t.eq("LIST limit 5000: OK (clamped)", c2.call("LIST", None, 0, 5000).name, "OK")
        t.eq("CLEAR of a namespace that does not exist: 0", c2.call("CLEAR", Str(b"nope-spec65"), ).result, 0)
        # FLASH_POP of a session with data and no flashes
        t.eq("FLASH_POP nil of a session with data, no flashes: {}", c.call("FLASH_POP", None, Str(b"l9"), None).result, [])
        t.eq("DESTROY_IF_FLASH of a session with data, no flashes: CONFLICT",
             c.call("DESTROY_IF_FLASH", None, Str(b"l9"), Str(b"t"), b"").name, "CONFLICT")
        r = c.call("FLASH_PUSH_EXISTING", None, Str(b"nobody"), Str(b"t"), b"", 1000)
        t.ok("FLASH_PUSH_EXISTING NOT_FOUND: result nil", r.name == "NOT_FOUND" and r.result is None)
        # unread: what reads clear it
        ns = uniq("unread")
        for k in (b"a", b"b", b"c", b"d"):
            c.call("SET", ns, Str(k), b"x", 60000)
        c.call("TTL", ns, Str(b"a"))
        c2.call("LIST", ns, 0, 1000)
        c.call("SET", ns, Str(b"b"), b"y", 60000)
        c.call("FLASH_PUSH", ns, Str(b"c"), Str(b"t"), b"m", 60000)
        c.call("GET", ns, Str(b"d"))
        u = c.call("STATS", ns).result.get("unread")
        print("  (unread after SET x4, then TTL a, LIST, SET b again, FLASH_PUSH c, GET d: %r)" % u)
        # After a HELLO that fails, nothing more is handled: the PING behind it is not answered.
        c3 = Conn(d.unix)
        b1 = pack([1, 1, 1, Str(b"x"), b"wrong"])
        b2 = pack([2, 2])
        c3.sock.sendall(struct.pack(">I", len(b1)) + b1 + struct.pack(">I", len(b2)) + b2)
        closing(t, "failed HELLO with a PING behind it: AUTH_FAILED only", c3, 1, "AUTH_FAILED")
        # Replies queued before a BAD_REQUEST are sent first; nothing after.
        c4 = hello(d)
        s = b""
        for b in (pack([2, 10]), pack([2, 11]), pack([0x10, 12, None]), pack([2, 13])):
            s += struct.pack(">I", len(b)) + b
        c4.sock.sendall(s)
        got = [(r.request_id, r.name) for r in (c4.read_reply(), c4.read_reply(), c4.read_reply())]
        t.eq("PING PING bad PING: two OK, BAD_REQUEST, then the end", got,
             [(10, "OK"), (11, "OK"), (12, "BAD_REQUEST")])
        t.ok("... and the PING after it unanswered", ended(c4) and not c4.inbuf)
        # Secret rotation: the old secret's connections get SHUTTING_DOWN after the grace.
        old_plain = hello(d)
        old_sealed = hello(d, "sealed", addr=d.tcp)
        path = os.path.join(d.dir, "auth-file")
        tmp = path + ".new"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, b"spec65-the-new-shared-secret-000000\n")
        os.close(fd)
        os.rename(tmp, path)
        d.proc.send_signal(signal.SIGHUP)
        time.sleep(0.3)
        n = Conn(d.unix)
        t.eq("rotation: the old secret still lets in during the grace", n.hello_plain(SECRET).name, "OK")
        for name, cc in (("plain", old_plain), ("sealed", old_sealed), ("new in grace", n)):
            try:
                r = cc.read_reply()
                t.ok("rotation: %s connection on the old secret: SHUTTING_DOWN id 0 after the grace" % name,
                     r.name == "SHUTTING_DOWN" and r.request_id == 0, repr(r))
            except Exception as e:
                t.ok("rotation: %s connection on the old secret: SHUTTING_DOWN id 0 after the grace" % name, False, repr(e))
        c5 = Conn(d.unix)
        rid = c5.request("HELLO", 1, Str(b"x"), SECRET)
        closing(t, "rotation: the old secret after the grace: AUTH_FAILED", c5, rid, "AUTH_FAILED")
        # A sealed connection at a stop gets SHUTTING_DOWN, sealed.
        s = Conn(d.tcp)
        s.hello_sealed(b"spec65-the-new-shared-secret-000000")
        s.call("PING")
        d.proc.send_signal(signal.SIGTERM)
        r = s.read_reply()
        t.ok("stop: a sealed connection gets SHUTTING_DOWN id 0, sealed", r.name == "SHUTTING_DOWN" and r.request_id == 0)
        d.proc.wait(10)
    finally:
        d.stop()
    # an odd max_frame: the flash room is max_frame / 2 rounded how?
    d = Daemon(sessd, "--max-frame", "5001", admin=None)
    try:
        c = hello(d)
        t.eq("--max-frame 5001 announced", c.max_frame, 5001)
        r1 = c.call("FLASH_PUSH", None, Str(b"odd"), Str(b"t"), b"m" * (2500 - 6), 60000)
        r2 = c.call("FLASH_PUSH", None, Str(b"odd2"), Str(b"t"), b"m" * (2500 - 5), 60000)
        print("  (max_frame 5001: flash bytes 2500 -> %s, 2501 -> %s)" % (r1.name, r2.name))
        t.ok("odd max_frame: flash room is max_frame / 2 rounded down", r1.name == "OK" and r2.name == "LIMIT")
    finally:
        d.stop()


def check_semantics(sessd, t):
    """Claims of the spec on expiry, flashes, bytes and the STATS counters."""
    d = Daemon(sessd)
    try:
        c = hello(d)
        adm = hello(d, "plain", ADMIN)
        ns = uniq("sem")
        g = lambda k: c.call("STATS", None).result.get(k)
        # str is bytes: invalid UTF-8 and NUL everywhere a str goes
        odd = Str(b"\xff\x00\xfe")
        t.eq("invalid UTF-8 ns and id: SET", c.call("SET", Str(b"n\xff"), odd, b"d", 60000).name, "OK")
        t.eq("... GET", c.call("GET", Str(b"n\xff"), odd).result, b"d")
        t.eq("... FLASH_PUSH with such a type and message", c.call("FLASH_PUSH", Str(b"n\xff"), odd, Str(b"\xc3"), Str(b"\xe2\x82"), 60000).result, 1)
        r = c.call("FLASH_POP", Str(b"n\xff"), odd, None)
        t.ok("... FLASH_POP returns the type and message bytes as str", r.result == [(b"\xc3", [b"\xe2\x82"])]
             and type(r.result[0][0]) is Str and type(r.result[0][1][0]) is Str, repr(r))
        names = [bytes(n) for n, _ in adm.call("NAMESPACES", 0, 1000).result[1]]
        t.ok("... NAMESPACES gives the name back as it was given", b"n\xff" in names)
        # expiry: a session past its instant is absent for every operation
        c.call("SET", ns, Str(b"e"), b"old", 50)
        c.call("FLASH_PUSH", ns, Str(b"e"), Str(b"t"), b"m1", 50)
        time.sleep(0.15)
        t.eq("expired, not yet reclaimed: COUNT 0", c.call("COUNT", ns).result, 0)
        t.eq("expired: TOUCH NOT_FOUND", c.call("TOUCH", ns, Str(b"e"), 60000).name, "NOT_FOUND")
        t.eq("expired: FLASH_PUSH makes a new session: 1", c.call("FLASH_PUSH", ns, Str(b"e"), Str(b"t"), b"m2", 60000).result, 1)
        t.eq("... without the old data", c.call("GET", ns, Str(b"e")).name, "NOT_FOUND")
        t.eq("... or the old flashes", c.call("FLASH_POP", ns, Str(b"e"), Str(b"t")).result, [b"m2"])
        # SET keeps flashes; FLASH_POP nil orders types by their oldest message
        c.call("FLASH_PUSH", ns, Str(b"k"), Str(b"a"), b"1", 60000)
        c.call("FLASH_PUSH", ns, Str(b"k"), Str(b"b"), b"2", 60000)
        c.call("FLASH_PUSH", ns, Str(b"k"), Str(b"a"), b"3", 60000)
        c.call("SET", ns, Str(b"k"), b"data", 60000)
        t.eq("SET keeps the flashes: LOAD [data, 3]", c.call("LOAD", ns, Str(b"k")).result, [b"data", 3])
        c.call("FLASH_POP", ns, Str(b"k"), Str(b"a"))
        c.call("FLASH_PUSH", ns, Str(b"k"), Str(b"a"), b"4", 60000)
        r = c.call("FLASH_POP", ns, Str(b"k"), None)
        t.eq("FLASH_POP nil: types by their oldest message (b's before a's new one)",
             [(bytes(k), v) for k, v in r.result], [(b"b", [b"2"]), (b"a", [b"4"])])
        # counters
        m0, f0, r0 = g("malformed_total"), g("forbidden_total"), g("requests_total")
        x = hello(d)
        x.request("HELLO", 1, Str(b"x"), SECRET)
        x.read_reply()
        x.close()
        t.eq("malformed_total: not for a second HELLO", g("malformed_total"), m0)
        x = Conn(d.unix)
        x.request("PING")
        x.read_reply()
        x.close()
        t.eq("malformed_total: not for NOT_READY", g("malformed_total"), m0)
        x = hello(d)
        x.send_body(b"\xc1")
        x.read_reply()
        x.close()
        time.sleep(0.05)
        t.eq("malformed_total: +1 for a malformed frame", g("malformed_total"), m0 + 1)
        c.call("LIST", ns, 0, 1)
        t.eq("forbidden_total: +1", g("forbidden_total"), f0 + 1)
        e0 = g("expired_total")
        c.call("SET", ns, Str(b"x1"), b"d", 20)
        time.sleep(0.08)
        c.call("GET", ns, Str(b"x1"))
        t.ok("expired_total counts an expired session", g("expired_total") >= e0 + 1)
        u0 = c.call("STATS", ns).result.get("unread")
        c.call("SET", ns, Str(b"lk"), b"d", 60000)
        c.call("FLASH_PUSH", ns, Str(b"lk"), Str(b"t"), b"tok", 60000)
        t.eq("unread +1 for a new SET", c.call("STATS", ns).result.get("unread"), u0 + 1)
        c.call("DESTROY_IF_FLASH", ns, Str(b"lk"), Str(b"t"), b"not")
        t.eq("a DESTROY_IF_FLASH's look reads the session (unread -1)", c.call("STATS", ns).result.get("unread"), u0)
        conns = g("connections")
        t.ok("connections counts this client's two", conns >= 2)
    finally:
        d.stop()


def hello_as(addr, identity, secret=SECRET):
    c = Conn(addr)
    name = Str(b"spec65\0" + identity) if identity is not None else Str(b"spec65")
    r = c._take_hello(c.call("HELLO", 1, name, secret))
    return c, r


def check_transport(sessd, t):
    """Half-close, a client that has gone, TOO_LARGE over TCP, the limits on connections."""
    d = Daemon(sessd, admin=None)
    try:
        for where, addr, kind in (("unix", d.unix, "plain"), ("tcp", d.tcp, "plain"),
                                  ("sealed tcp", d.tcp, "sealed")):
            # half-close: what was sent is answered, then the end of the stream
            c = hello(d, kind, addr=addr)
            s = b"".join(struct.pack(">I", 3) + pack([2, i]) for i in range(20))
            c.send_bytes(s)
            c.sock.shutdown(socket.SHUT_WR)
            ids = [c.read_reply().request_id for _ in range(20)]
            t.ok("%s: half-close after 20 PINGs: all answered, then the end" % where,
                 ids == list(range(20)) and ended(c))
            c.close()
            # a client that has gone: its changes still run
            ns = uniq("gone")
            c = hello(d, kind, addr=addr)
            s = b"".join(struct.pack(">I", len(b)) + b for b in
                         (pack([0x11, i, ns, Str(b"g%d" % i), b"x", 60000]) for i in range(200)))
            c.send_bytes(s)
            if where != "unix":
                c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            c.close()
            q = hello(d)
            n = 0
            for _ in range(100):
                n = q.call("COUNT", ns).result
                if n == 200:
                    break
                time.sleep(0.01)
            t.eq("%s: 200 SETs then %s: all carried out" % (where, "a reset" if where != "unix" else "a close"), n, 200)
            q.close()
        # TOO_LARGE over TCP with the body still coming: the reply is not lost to a reset
        c = hello(d, addr=d.tcp)
        big = b"\0" * (2 << 20)
        c.sock.sendall(struct.pack(">I", len(big)) + big)
        closing(t, "tcp: 2 MiB frame sent whole: TOO_LARGE arrives", c, 0, "TOO_LARGE")
        c.close()
    finally:
        d.stop()
    # --max-connections 2 over TCP: a second process of the host takes one of the first's
    d = Daemon(sessd, "--max-connections", "2", admin=None)
    try:
        a1, _ = hello_as(d.tcp, b"proc-A")
        a2, _ = hello_as(d.tcp, b"proc-A")
        b, r = hello_as(d.tcp, b"proc-B")
        t.eq("limit 2, process A holds 2: process B's HELLO answered OK", r.name, "OK")
        got = []
        for a in (a1, a2):
            a.sock.settimeout(1.0)
            try:
                got.append(a.read_reply().name)
            except (socket.timeout, Closed) as e:
                got.append(type(e).__name__)
        t.ok("... one of A's connections told SHUTTING_DOWN", sorted(got).count("SHUTTING_DOWN") == 1, repr(got))
        t.eq("... B's connection works", b.call("PING").name, "OK")
        # a third process now: A and B hold one each: refused after its HELLO (plain: in place of the reply)
        c = Conn(d.tcp)
        rid = c.request("HELLO", 1, Str(b"spec65\0proc-C"), SECRET)
        try:
            r = c.read_reply()
            t.ok("... process C, A and B holding one each: BUSY id 0 in place of the HELLO reply",
                 r.name == "BUSY" and r.request_id == 0, repr(r))
        except (Closed, ConnectionResetError) as e:
            t.ok("... process C, A and B holding one each: BUSY or the end", True)
            print("  (process C saw %r, not BUSY)" % e)
        st = b.call("STATS", None).result
        t.ok("... connections_displaced_total and connections_refused_total count them",
             st.get("connections_displaced_total") >= 1 and st.get("connections_refused_total") >= 1, repr(st))
    finally:
        d.stop()
    # sealed, on trial and refused: a process holds two, a newcomer of its host states no
    # identity: let in on trial, its HELLO answered, then BUSY as its first reply, its first
    # record's SET not carried out (PROTOCOL.md, "At the connection limit" and BUSY)
    d = Daemon(sessd, "--max-connections", "2", admin=None)
    try:
        a1, _ = hello_as(d.tcp, b"proc-A")
        a2, _ = hello_as(d.tcp, b"proc-A")
        s = Conn(d.tcp)
        r = s.hello_sealed(SECRET, name="spec65")
        t.eq("limit 2, A holds 2, a sealed newcomer stating no identity: HELLO answered", r.name, "OK")
        if r.name == "OK":
            s.request("SET", None, Str(b"from-D"), b"x", 60000)
            try:
                r = s.read_reply()
                t.ok("... its first record: BUSY id 0 as its first reply, sealed",
                     r.name == "BUSY" and r.request_id == 0, repr(r))
            except Exception as e:
                t.ok("... its first record: BUSY id 0 as its first reply, sealed", False, repr(e))
        t.eq("... its SET was not carried out", a1.call("GET", None, Str(b"from-D")).name, "NOT_FOUND")
        t.eq("... and A keeps both", a2.call("PING").name, "OK")
    finally:
        d.stop()
    # --max-client-memory: a connection that stalls mid-frame may be closed with BUSY
    d = Daemon(sessd, "--max-frame", "65536", "--max-client-memory", "262144", admin=None)
    try:
        st = hello(d).call("STATS", None).result
        print("  (max_client_bytes with --max-client-memory 262144: %r)" % st.get("max_client_bytes"))
        conns = []
        for i in range(8):
            c = hello(d)
            c.sock.sendall(struct.pack(">I", 65000) + pack([0x11, 1, None, Str(b"m"), b""])[:5] + b"\0" * 60000)
            conns.append(c)
            time.sleep(0.05)
        busy = 0
        for c in conns:
            c.sock.settimeout(0.5)
            try:
                r = c.read_reply()
                busy += r.name == "BUSY" and r.request_id == 0
            except (socket.timeout, Closed, ConnectionResetError):
                pass
        t.ok("--max-client-memory: stalled mid-frame connections told BUSY id 0 (%d of 8)" % busy, busy >= 1)
        t.ok("... and the server still serves", hello(d).call("PING").name == "OK")
    finally:
        d.stop()


def check_hello_order(sessd, t):
    d = Daemon(sessd, admin=None)
    try:
        c_sk = os.urandom(32)
        c_pk = x25519_base(c_sk)
        kx = {"kx": c_pk, "proof": client_proof(psk_of(b"not the secret at all"), c_pk)}
        c = Conn(d.tcp)
        rid = c.request("HELLO", 2, Str(b"x"), kx)
        closing(t, "sealed HELLO, version 2, wrong proof: BAD_VERSION in the clear", c, rid, "BAD_VERSION")
        c = Conn(d.tcp)
        rid = c.request("HELLO", 1, Str(b"x"), kx)
        closing(t, "sealed HELLO, wrong proof: AUTH_FAILED in the clear", c, rid, "AUTH_FAILED")
        c = hello(d, "sealed", addr=d.tcp)
        rid = c.request("HELLO", 2, Str(b"x"), None)
        r = c.read_reply()
        t.ok("a second HELLO (version 2) on a sealed connection: BAD_REQUEST, sealed, with its id",
             r.name == "BAD_REQUEST" and r.request_id == rid, repr(r))
        t.ok("... then the end", ended(c))
    finally:
        d.stop()


def check_memory_and_restart(sessd, t):
    """NO_MEMORY's claims, and a restart under a smaller max_frame (PROTOCOL.md, Limits)."""
    d = Daemon(sessd, "--max-memory", "2000000", admin=None)
    try:
        c = hello(d)
        ns = uniq("mem")
        st = None
        for i in range(400):
            st = c.call("SET", ns, Str(b"m%d" % i), b"x" * 20000, 60000)
            if st.name != "OK":
                break
        t.eq("--max-memory 2 MB: SETs end in NO_MEMORY", st.name, "NO_MEMORY")
        t.eq("... connection open", c.call("PING").name, "OK")
        t.eq("at NO_MEMORY: FLASH_PUSH_EXISTING to no session is NOT_FOUND",
             c.call("FLASH_PUSH_EXISTING", ns, Str(b"none"), Str(b"t"), b"m" * 20000, 60000).name, "NOT_FOUND")
        t.eq("at NO_MEMORY: SET_IF of no session is NOT_FOUND",
             c.call("SET_IF", ns, Str(b"none"), b"x" * 30000, 60000, tag(b"")).name, "NOT_FOUND")
        r = c.call("SET", Str(b"fresh-ns-spec65"), Str(b"a"), b"x" * 40000, 60000)
        t.eq("at NO_MEMORY: a SET to a new namespace refused", r.name, "NO_MEMORY")
        t.eq("... and leaves no namespace behind", c.call("STATS", Str(b"fresh-ns-spec65")).result.get("sessions"), 0)
        g = c.call("STATS", None).result
        t.ok("no_memory_total counts them", g.get("no_memory_total") >= 2, repr(g.get("no_memory_total")))
        t.ok("max_bytes is the limit", g.get("max_bytes") == 2000000, repr(g.get("max_bytes")))
    finally:
        d.stop()
    datadir = tempfile.mkdtemp(prefix="spec65-data-")
    os.chmod(datadir, 0o700)
    d = Daemon(sessd, "--data-dir", datadir, admin=None)
    big = os.urandom(100000)
    try:
        c = hello(d)
        c.call("SET", None, Str(b"big"), big, 600000)
        c.call("FLASH_PUSH", None, Str(b"big"), Str(b"t"), b"f" * 40000, 600000)
        c.call("FLASH_PUSH", None, Str(b"big"), Str(b"u"), b"g" * 10, 600000)
        c.close()
    finally:
        d.stop()
    d = Daemon(sessd, "--data-dir", datadir, "--max-frame", "65536", admin=None)
    try:
        c = hello(d)
        t.eq("restart, smaller max_frame: GET of older, larger data: LIMIT", c.call("GET", None, Str(b"big")).name, "LIMIT")
        t.eq("... LOAD: LIMIT", c.call("LOAD", None, Str(b"big")).name, "LIMIT")
        t.eq("... TTL answers", c.call("TTL", None, Str(b"big")).name, "OK")
        t.eq("... FLASH_POP of all, over the new max_frame / 2 ... fits? (40 kB < 64 KiB)",
             c.call("FLASH_POP", None, Str(b"big"), Str(b"u")).result, [b"g" * 10])
        t.eq("... a push to flashes over the new max_frame / 2: LIMIT",
             c.call("FLASH_PUSH", None, Str(b"big"), Str(b"t"), b"", 600000).name, "LIMIT")
        t.eq("... SET_IF with a wrong tag: CONFLICT", c.call("SET_IF", None, Str(b"big"), b"n", 600000, tag(b"x")).name, "CONFLICT")
        t.eq("... SET_IF with the old data's tag: OK", c.call("SET_IF", None, Str(b"big"), b"n", 600000, tag(big)).name, "OK")
        t.eq("... and the flashes kept", c.call("LOAD", None, Str(b"big")).result, [b"n", 1])
    finally:
        d.stop()
        shutil.rmtree(datadir, ignore_errors=True)


def check_io_error(sessd, t):
    """A data directory on a full disk: IO_ERROR's claims (Statuses, 8). Needs root (a tmpfs of
    its own in a mount namespace); skipped, and said so, without."""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        print("  (IO_ERROR not checked: needs root and unshare)")
        return
    top = tempfile.mkdtemp(prefix="spec65-disk-")
    wrapper = os.path.join(top, "sessd-on-tmpfs")
    with open(wrapper, "w") as f:
        f.write('#!/bin/sh\nmount -t tmpfs -o size=2m,mode=0700 none "%s/d" || exit 9\n'
                'exec "%s" "$@"\n' % (top, sessd))
    os.chmod(wrapper, 0o755)
    os.mkdir(os.path.join(top, "d"), 0o700)
    runner = os.path.join(top, "unshared")
    with open(runner, "w") as f:
        f.write('#!/bin/sh\nexec unshare -m "%s" "$@"\n' % wrapper)
    os.chmod(runner, 0o755)
    d = Daemon(runner, "--data-dir", os.path.join(top, "d"), "--fsync", "always", admin=None)
    try:
        c = hello(d)
        ns = uniq("io")
        c.call("SET", ns, Str(b"keep"), b"k", 600000)
        c.call("FLASH_PUSH", ns, Str(b"keep"), Str(b"t"), b"m", 600000)
        broke = None
        for i in range(400):
            try:
                r = c.call("SET", ns, Str(b"f%d" % i), os.urandom(20000), 600000)
            except (Closed, ConnectionResetError) as e:
                broke = "closed"
                break
            if r.name != "OK":
                broke = r.name
                break
        print("  (full disk: the SETs end with %s)" % broke)
        t.ok("full disk: the SETs end (IO_ERROR, or the connection closed without a reply)",
             broke in ("IO_ERROR", "closed"), repr(broke))
        q = hello(d)
        st = q.call("STATS", None).result
        t.eq("full disk: STATS writable 0", st.get("writable"), 0)
        for name, args, in (("SET", (ns, Str(b"new"), b"x", 1000)),
                            ("DESTROY of none", (ns, Str(b"none"))),
                            ("TOUCH of none", (ns, Str(b"none"), 1000)),
                            ("SET_IF, wrong tag", (ns, Str(b"keep"), b"x", 1000, tag(b"no"))),
                            ("FLASH_PUSH_EXISTING of none", (ns, Str(b"none"), Str(b"t"), b"m", 1000)),
                            ("DESTROY_IF_FLASH, wrong token", (ns, Str(b"keep"), Str(b"t"), b"no"))):
            op = name.split(" ")[0].rstrip(",")
            r = q.call(op, *args)
            t.eq("full disk: %s: IO_ERROR before looking at the session" % name, r.name, "IO_ERROR")
        t.eq("full disk: FLASH_POP that would remove: IO_ERROR", q.call("FLASH_POP", ns, Str(b"keep"), None).name, "IO_ERROR")
        t.eq("full disk: ... and the message stays", q.call("LOAD", ns, Str(b"keep")).result, [b"k", 1])
        t.eq("full disk: FLASH_POP of nothing: OK", q.call("FLASH_POP", ns, Str(b"keep"), Str(b"other")).result, [])
        t.eq("full disk: TTL answers", q.call("TTL", ns, Str(b"keep")).name, "OK")
        t.eq("full disk: GET answers", q.call("GET", ns, Str(b"keep")).result, b"k")
        t.ok("full disk: io_errors_total counts", q.call("STATS", None).result.get("io_errors_total") >= 7)
        t.eq("full disk: connection open after IO_ERROR", q.call("PING").name, "OK")
    finally:
        d.stop()
        subprocess.run(["umount", os.path.join(top, "d")], stderr=subprocess.DEVNULL)
        shutil.rmtree(top, ignore_errors=True)


def check_stop_midway(sessd, t):
    """SHUTTING_DOWN's promise: every request carried out was answered before it, none after
    was carried out. A pipeline of SETs, SIGTERM while it is read; then a restart on the same
    data shows which were made."""
    datadir = tempfile.mkdtemp(prefix="spec65-stop-")
    os.chmod(datadir, 0o700)
    n = 20000
    try:
        for kind in ("plain", "sealed"):
            d = Daemon(sessd, "--data-dir", datadir, admin=None)
            ns = Str(b"stop-" + kind.encode())
            try:
                c = hello(d, kind, addr=d.tcp)
                stream = b"".join(struct.pack(">I", len(b)) + b for b in
                                  (pack([0x11, i, ns, Str(b"s%d" % i), b"v", 600000]) for i in range(n)))
                import threading
                w = threading.Thread(target=lambda: _send_quietly(c, stream))
                w.start()
                answered, last = 0, None
                while True:
                    try:
                        r = c.read_reply()
                    except (Closed, ConnectionResetError) as e:
                        last = "end"
                        break
                    if r.name == "OK" and r.request_id == answered:
                        answered += 1
                        if answered == 200:
                            d.proc.send_signal(signal.SIGTERM)
                        continue
                    last = r
                    break
                w.join(10)
                d.proc.wait(10)
                print("  (%s: %d of %d SETs answered before %r)" % (kind, answered, n, last))
                t.ok("%s stop midway: SHUTTING_DOWN id 0 after the answered ones" % kind,
                     getattr(last, "name", None) == "SHUTTING_DOWN" and last.request_id == 0 and answered < n, repr(last))
            finally:
                d.stop()
            d = Daemon(sessd, "--data-dir", datadir, admin=None)
            try:
                q = hello(d)
                count = q.call("COUNT", ns).result
                t.eq("%s stop midway: after a restart, exactly the answered SETs are there" % kind, count, answered)
                if answered:
                    t.eq("... the last answered one among them", q.call("GET", ns, Str(b"s%d" % (answered - 1))).name, "OK")
            finally:
                d.stop()
    finally:
        shutil.rmtree(datadir, ignore_errors=True)


def _send_quietly(c, stream):
    try:
        c.send_bytes(stream)
    except OSError:
        pass
