#!/usr/bin/env python3
"""A man in the middle of sealed sessd connections on loopback TCP (by hand; not in CI).

    scripts/mitm-proxy.py LISTEN_PORT DAEMON_PORT SCENARIO [options]

Listens on 127.0.0.1:LISTEN_PORT and relays each connection to a sessd started with
--auth-file on 127.0.0.1:DAEMON_PORT, parsing what it relays without any key: each direction
is one plain frame (HELLO, or its reply) then sealed records (PROTOCOL.md, "Sealed
connections"), both a 4-byte big-endian length and that many bytes. SCENARIO then changes
record N (0: the first after HELLO) of direction DIR on connection C (options below), and
logs every unit it relays (direction, number, length, milliseconds since the connection
began) to stderr, so that a run also shows what an observer learns. It never holds a key:
all it can do is what any host on the path can. Python 3 and Debian's python3-cryptography
(for tests/fuzz/hostile/sealproto.py, whose MessagePack helpers it uses).

Options: --dir up|down (up: client to sessd; default up), --n N (default 1), --conn C (the
connection it acts on, counted from 1; default 1; 0: every one), --delay SECONDS (default 3).

Scenarios:
  pass          relay as is (the passive look: the log shows each record's length)
  flip-len      one bit flipped in record N's length prefix
  flip-tag      one bit flipped in record N's tag (its last 16 bytes)
  flip-body     one bit flipped in record N's ciphertext
  drop          record N left out, the later ones relayed
  dup           record N sent twice
  reorder       records N and N+1 swapped
  replay        record 0 sent again after record N
  splice        record N replaced by record N of the first connection (same number, other keys)
  reflect       (up) record N replaced by the last record the server sent on this connection
  cut           half of record N, then both sides closed
  delay         record N, and all after it, held for --delay seconds; when the client gives
                up meanwhile (a timeout) the held bytes still go to sessd, and its answer is
                read for a second
  hold          record N held; the client's side is reset at once (it sees its connection
                break) while sessd's stays open; after --delay seconds record N goes to sessd
                after all: a write the client was told failed, or sent again and saw done
  replay-conn   everything the client sent on connection 1 (HELLO and records) sent again on
                a new connection to sessd --delay seconds after connection 1 ended
  strip-kx      the HELLO reply's kx taken out (auth: true left): a server that did not seal
  auth-nil      the HELLO reply's auth set to nil and its kx taken out
  refuse-seal   the HELLO reply replaced by AUTH_FAILED "key exchange not supported", as an
                older server might say: does the client fall back to showing its secret plain?
  hello-nil     the client's HELLO auth replaced by nil (sessd must not let it in unsealed)
  small-frame   the HELLO reply's max_frame set to 4096 and max_data to 4080
  big-frame     the HELLO reply's max_frame set to 2^32 - 1 and max_data to 2^32 - 17
  server-id     the HELLO reply's server_id changed (a restart that did not happen)
Each HELLO's auth is logged by its kind (a kx map, nil, or "PLAIN n bytes": a secret sent in
the clear). Ctrl-C stops it; a summary of the lengths seen goes to stderr on exit.
"""
import argparse
import os
import socket
import struct
import sys
import threading
import time

# The hostile peers' MessagePack helpers; no __pycache__ left in the source tree.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "fuzz", "hostile"))
from sealproto import NIL, mp_array, mp_decode, mp_map, mp_str, mp_uint  # noqa: E402

ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
ap.add_argument("listen_port", type=int)
ap.add_argument("daemon_port", type=int)
ap.add_argument("scenario")
ap.add_argument("--dir", choices=("up", "down"), default="up")
ap.add_argument("--n", type=int, default=1)
ap.add_argument("--conn", type=int, default=1)
ap.add_argument("--delay", type=float, default=3.0)
args = ap.parse_args()

SCENARIOS = {"pass", "flip-len", "flip-tag", "flip-body", "drop", "dup", "reorder", "replay",
             "splice", "reflect", "cut", "delay", "hold", "replay-conn", "strip-kx",
             "auth-nil", "refuse-seal", "hello-nil", "small-frame", "big-frame", "server-id"}
RECORD_SCENARIOS = {"flip-len", "flip-tag", "flip-body", "drop", "dup", "reorder", "replay",
                    "splice", "reflect", "cut", "delay", "hold"}
if args.scenario not in SCENARIOS:
    sys.exit(f"unknown scenario {args.scenario}; see --help")

lock = threading.Lock()
conn_count = 0
first_conn_units = {"up": [], "down": []}  # connection 1's units, for splice and replay-conn
lengths = {"up": [], "down": []}


def log(msg):
    with lock:
        print(f"{time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


# --- HELLO and its reply, changed field by field -------------------------------------------

def items(b, p, n):
    """The n values from b[p]: a list of (decoded value, raw bytes), and the offset after."""
    out = []
    for _ in range(n):
        v, q = mp_decode(b, p)
        out.append((v, bytes(b[p:q])))
        p = q
    return out, p


def unit(body):
    return struct.pack(">I", len(body)) + body


def auth_kind(a):
    if a is None:
        return "nil"
    if isinstance(a, dict):
        return "kx map (sealed)"
    if isinstance(a, (bytes, bytearray)):
        return f"PLAIN {len(a)} bytes: a secret in the clear"
    return type(a).__name__


def edit_hello(direction, body, scenario):
    """The HELLO (up) or its reply (down) as the scenario makes it, or None: unchanged."""
    if direction == "up":
        # [op, request id, version, client name, auth]
        fields, _ = items(body, 1, body[0] & 0x0f)
        auth = fields[4][0] if len(fields) > 4 else None
        log(f"  HELLO auth: {auth_kind(auth)}")
        if scenario != "hello-nil" or len(fields) < 5:
            return None
        return mp_array([raw for _, raw in fields[:4]] + [NIL])
    (rid, rid_raw), (status, _), (result, result_raw) = items(body, 1, 3)[0]
    log(f"  HELLO reply status {status}, auth "
        f"{result.get(b'auth') if isinstance(result, dict) else result!r}")
    if scenario == "refuse-seal":
        return mp_array([rid_raw, mp_uint(9), mp_str("a key exchange is not supported by this server")])
    if status != 0 or not isinstance(result, dict):
        return None
    # The reply map's pairs as they came, the changed ones replaced.
    raw = items(result_raw, 1 if result_raw[0] <= 0x8f else 3, len(result) * 2)[0]
    keep = {raw[i][0]: (raw[i][1], raw[i + 1][1]) for i in range(0, len(raw), 2)}
    if scenario == "strip-kx":
        keep.pop(b"kx", None)
    elif scenario == "auth-nil":
        keep.pop(b"kx", None)
        keep[b"auth"] = (mp_str("auth"), NIL)
    elif scenario in ("small-frame", "big-frame"):
        frame = 4096 if scenario == "small-frame" else 0xffffffff
        keep[b"max_frame"] = (mp_str("max_frame"), mp_uint(frame))
        keep[b"max_data"] = (mp_str("max_data"), mp_uint(frame - 16))
    elif scenario == "server-id":
        keep[b"server_id"] = (mp_str("server_id"), mp_str("0" * 32))
    else:
        return None
    return mp_array([rid_raw, mp_uint(status), mp_map(list(keep.values()))])


# --- the relay ---------------------------------------------------------------------------

def read_exact(sock, n):
    data = b""
    while len(data) < n:
        try:
            got = sock.recv(n - len(data))
        except OSError:
            return None
        if not got:
            return None
        data += got
    return data


def read_unit(sock):
    head = read_exact(sock, 4)
    if head is None:
        return None
    body = read_exact(sock, struct.unpack(">I", head)[0])
    return None if body is None else head + body


def send(sock, data):
    try:
        sock.sendall(data)
        return True
    except OSError:
        return False


def reset(sock):
    """Close ${sock} with a reset (RST), waking a thread blocked reading it."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RD)
        sock.close()
    except OSError:
        pass


def flip(u, at):
    b = bytearray(u)
    b[at] ^= 0x01
    return bytes(b)


class Conn:
    def __init__(self, num, client, daemon):
        self.num, self.client, self.daemon = num, client, daemon
        self.t0 = time.monotonic()
        self.units = {"up": [], "down": []}
        self.down_records = []
        self.was_reset = False  # closed with a reset: the other direction must not FIN it
        self.keep_daemon = threading.Event()  # set: the daemon side must outlive the client

    def ms(self):
        return int((time.monotonic() - self.t0) * 1000)

    def acts(self, direction):
        """Whether the scenario changes this connection's records in ${direction}."""
        return (args.scenario in RECORD_SCENARIOS and args.conn in (0, self.num)
                and direction == args.dir)

    def relay(self, direction):
        src, dst = (self.client, self.daemon) if direction == "up" else (self.daemon, self.client)
        held = None  # reorder: the record waiting for the one after it
        index = -1   # -1: HELLO; then record numbers
        sc = args.scenario
        while True:
            u = read_unit(src)
            if u is None:
                break
            self.units[direction].append(u)
            if self.num == 1:
                first_conn_units[direction].append(u)
            with lock:
                lengths[direction].append(len(u))
            what = "HELLO" if index == -1 else f"record {index}"
            log(f"conn {self.num} {direction:4} {what:10} {len(u):6} bytes at {self.ms()} ms")
            if direction == "down" and index >= 0:
                self.down_records.append(u)
            if index == -1:
                edited = edit_hello(direction, u[4:], sc) if args.conn in (0, self.num) else None
                if edited is not None:
                    log(f"  ** {sc}: HELLO {'reply ' if direction == 'down' else ''}changed")
                    u = unit(edited)
                index += 1
                if not send(dst, u):
                    break
                continue
            n, index = index, index + 1
            acting = self.acts(direction)
            if acting and sc == "reorder" and held is not None and n == args.n + 1:
                log(f"  ** reorder: record {n} sent before record {n - 1}")
                if not send(dst, u + held):
                    break
                held = None
                continue
            if not acting or n != args.n:
                if not send(dst, u):
                    break
                continue
            # n == args.n, on the connection and direction acted on
            log(f"  ** {sc} at record {n}")
            if sc == "flip-len":
                u = flip(u, 3)
            elif sc == "flip-tag":
                u = flip(u, len(u) - 1)
            elif sc == "flip-body":
                u = flip(u, 4 + (len(u) - 4 - 16) // 2)
            elif sc == "drop":
                continue
            elif sc == "dup":
                u = u + u
            elif sc == "reorder":
                held = u
                continue
            elif sc == "replay":
                u = u + self.units[direction][1]
            elif sc == "splice":
                other = first_conn_units[direction]
                if self.num == 1 or len(other) <= n + 1:
                    log("  (splice needs a first connection with that record: passed)")
                else:
                    u = other[n + 1]
            elif sc == "reflect":
                if self.down_records:
                    u = self.down_records[-1]
                else:
                    log("  (no server record yet: passed)")
            elif sc == "cut":
                send(dst, u[:len(u) // 2])
                time.sleep(0.2)
                self.was_reset = True
                reset(self.client)
                reset(self.daemon)
                return
            elif sc in ("delay", "hold"):
                self.keep_daemon.set()
                if sc == "hold":
                    log("  ** hold: client side reset, sessd side kept open")
                    self.was_reset = True
                    reset(self.client)
                time.sleep(args.delay)
                log(f"  ** {sc}: record {n} sent to sessd {args.delay:g} s late")
                if not send(dst, u):
                    break
                if sc == "hold":
                    time.sleep(1.0)
                    reset(self.daemon)
                    return
                continue
            if not send(dst, u):
                break
        if direction == "up" and self.keep_daemon.is_set() and args.scenario == "delay":
            # The client went away while its record was held: sessd's side stays for the
            # held bytes and a second of its answer.
            time.sleep(args.delay + 1.0)
        for s in (self.client, self.daemon):
            if self.was_reset:
                break
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        log(f"conn {self.num} {direction} ended at {self.ms()} ms")


def replay_connection(units):
    time.sleep(args.delay)
    d = socket.create_connection(("127.0.0.1", args.daemon_port))
    log(f"replay-conn: {len(units)} units of connection 1 sent again on a new connection")
    d.sendall(b"".join(units))
    d.settimeout(2.0)
    got = b""
    try:
        while True:
            b = d.recv(65536)
            if not b:
                break
            got += b
    except OSError:
        pass
    if len(got) >= 4:
        n = struct.unpack(">I", got[:4])[0]
        reply, _ = mp_decode(got[4:4 + n])
        log(f"replay-conn: HELLO reply status {reply[1]} (answered: keys it cannot compute); "
            f"then {len(got) - 4 - n} bytes of records (sealed; sessd's log says what it did)")
    else:
        log(f"replay-conn: {len(got)} bytes back")
    d.close()


def serve(client):
    global conn_count
    with lock:
        conn_count += 1
        num = conn_count
    try:
        daemon = socket.create_connection(("127.0.0.1", args.daemon_port))
    except OSError as e:
        log(f"conn {num}: cannot reach sessd: {e}")
        client.close()
        return
    c = Conn(num, client, daemon)
    log(f"conn {num} opened")
    down = threading.Thread(target=c.relay, args=("down",), daemon=True)
    down.start()
    c.relay("up")
    down.join()
    if num == 1 and args.scenario == "replay-conn":
        threading.Thread(target=replay_connection, args=(list(c.units["up"]),),
                         daemon=True).start()


def main():
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", args.listen_port))
    ls.listen(64)
    log(f"mitm on 127.0.0.1:{args.listen_port} -> 127.0.0.1:{args.daemon_port}, "
        f"scenario {args.scenario} (dir {args.dir}, record {args.n}, conn {args.conn or 'all'})")
    try:
        while True:
            client, _ = ls.accept()
            threading.Thread(target=serve, args=(client,), daemon=True).start()
    except KeyboardInterrupt:
        pass
    finally:
        for d in ("up", "down"):
            ls_ = sorted(lengths[d])
            if ls_:
                log(f"summary {d}: {len(ls_)} units, lengths {ls_[0]}..{ls_[-1]}, "
                    f"distinct {sorted(set(ls_))[:20]}")


main()
