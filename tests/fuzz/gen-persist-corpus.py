#!/usr/bin/env python3
"""Write tests/fuzz/corpus-persist/ from data directories the real daemon writes.

Usage: gen-persist-corpus.py SESSD SESSCTL OUTDIR

Runs SESSD with --data-dir on a few workloads (a log only; a snapshot and the log after it,
forced with a small --snapshot-log-bytes; the same with fuzz_persist's --key-file), stops it
cleanly, and writes each directory as one fuzz_persist input (fuzz_persist.c describes the
format). Each file goes in as it is (ctl 3: fuzz_persist recomputes the checksums, which
changes nothing in a sound file). Unencrypted directories are also written in the harness's sealing
form (ctl 7: nonce, plaintext, room for the tag), so the fuzzer starts from encrypted records
whose plaintext it can change. Two are also written with fuzz_persist's cut (flags bit 1): the
newest log segment tried cut short as a crash leaves it, once inside a record and once inside
its header. Needs only the Python standard library.
"""
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

KEY = b"fuzz_persist: key of 32 bytes!!\0"
NOW_SLACK_MS = 1000


def run_daemon(sessd, sessctl, data_dir, work, extra, script):
    sock = os.path.join(work, "s.sock")
    ready = os.path.join(work, "ready")
    if os.path.exists(ready):
        os.unlink(ready)
    d = subprocess.Popen([sessd, "--listen", "unix:" + sock, "--data-dir", data_dir,
                          "--ready-file", ready, "--fsync", "always"] + extra,
                         stderr=subprocess.DEVNULL)
    for _ in range(200):
        if os.path.exists(ready):
            break
        time.sleep(0.02)
    else:
        d.kill()
        sys.exit("sessd did not start")
    for args in script:
        subprocess.run([sessctl, "--connect", "unix:" + sock] + args, check=True,
                       stdout=subprocess.DEVNULL)
    d.send_signal(signal.SIGTERM)
    if d.wait(10) != 0:
        sys.exit("sessd exited with %d" % d.returncode)


def kind_of(name):
    if name.startswith("snap."):
        return 0, int(name[5:], 16)
    if name.startswith("log."):
        return 1, int(name[4:], 16)
    return None, None


def sealing_form(data):
    """A log's records as nonce + plaintext + tag room, lengths grown to match."""
    out = bytearray(data[:52])
    out[12:16] = struct.pack("<I", 1)  # encrypted
    off = 52
    while off + 12 <= len(data):
        (n,) = struct.unpack_from("<I", data, off)
        body = data[off + 12:off + 12 + n]
        out += struct.pack("<III", n + 40, 0, 0) + bytes(24) + body + bytes(16)
        off += 12 + n
    return bytes(out)


def to_input(data_dir, keyed, now_ms, sealing=False, cut=None):
    flags = (1 if keyed or sealing else 0) | (2 if cut is not None else 0)
    out = bytearray(struct.pack("<BQ", flags, now_ms))
    if cut is not None:
        out += struct.pack("<H", cut)
    for name in sorted(os.listdir(data_dir)):
        kind, seq = kind_of(name)
        if kind is None:
            continue
        with open(os.path.join(data_dir, name), "rb") as f:
            data = f.read()
        ctl = 3
        if sealing:
            data, ctl = sealing_form(data), 7
        assert seq < 256 and len(data) < 65536
        out += struct.pack("<BBBH", kind, seq, ctl, len(data)) + data
    return bytes(out)


def main():
    sessd, sessctl, outdir = sys.argv[1:4]
    os.makedirs(outdir, exist_ok=True)
    work = tempfile.mkdtemp(prefix="gen-persist-")
    key_file = os.path.join(work, "key")
    with open(key_file, "wb") as f:
        f.write(KEY)
    os.chmod(key_file, 0o600)
    ids = ["id%02d" % i for i in range(6)]
    script = []
    for i, sid in enumerate(ids):
        script.append(["set", sid, '{"n":%d}' % i])
    script += [
        ["flash-push", ids[0], "info", "hello"],
        ["flash-push", ids[0], "info", "again"],
        ["flash-push", ids[0], "error", "oops"],
        ["flash-push", "fresh", "info", "before save"],
        ["flash-pop", ids[0], "error"],
        ["touch", ids[1], "--ttl", "7200"],
        ["destroy", ids[2]],
        ["--namespace", "shop", "set", "cart1", "[1,2,3]"],
        ["--namespace", "shop", "set", "cart2", "[]"],
        ["--namespace", "old", "set", "gone", "x"],
        ["--namespace", "old", "clear", "--yes"],
        ["flash-push", ids[3], "info", "popped", "--existing"],
        ["flash-pop", ids[3]],
    ]
    cases = [
        ("log-only", [], False, script),
        ("snapshot-and-log", ["--snapshot-log-bytes", "400"], False, script),
        ("encrypted", ["--key-file", key_file, "--snapshot-log-bytes", "600"], True, script),
        ("empty", [], False, [["ping"]]),
    ]
    for name, extra, keyed, sc in cases:
        data_dir = os.path.join(work, name)
        run_daemon(sessd, sessctl, data_dir, work, extra, sc)
        now_ms = int(time.time() * 1000) + NOW_SLACK_MS
        with open(os.path.join(outdir, "daemon-" + name), "wb") as f:
            f.write(to_input(data_dir, keyed, now_ms))
        if not keyed and name != "empty":
            with open(os.path.join(outdir, "daemon-" + name + "-sealing"), "wb") as f:
                f.write(to_input(data_dir, keyed, now_ms, sealing=True))
        # in a sealed record of the log; inside the header of the segment after the snapshot
        cuts = {"log-only": (1000, True), "snapshot-and-log": (30, False)}
        if name in cuts:
            cut, sealing = cuts[name]
            with open(os.path.join(outdir, "daemon-" + name + "-cut"), "wb") as f:
                f.write(to_input(data_dir, keyed, now_ms, sealing=sealing, cut=cut))
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
