#!/usr/bin/env python3
"""Write the seed corpus of fuzz_seal (tests/fuzz/corpus-seal/), one file per case, named
after what it holds. fuzz_seal.c describes the input format. Run from anywhere:

    python3 tests/fuzz/gen-seal-corpus.py

The REPLY seeds hold a right HELLO reply, computed here with Python's `cryptography` from
the harness's fixed secret and keys (as protocol/gen-seal-vectors.py computes its vectors).
"""
import os
import struct
import sys

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus-seal")

# As in fuzz_seal.c.
SECRET = b"fuzz_seal: a secret of 32 bytes!"
CLIENT_SK = bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
SERVER_SK = bytes.fromhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")

RECORDS, HELLO, REPLY = 0, 1, 2
SEAL, RAW, FLIP, REPLAY, DROP, CUT, LENGTH, END = range(8)


# The msgpack writers, requests and key exchange are the hostile scripts' (hostile/sealproto.py).
sys.path.insert(0, os.path.join(HERE, "hostile"))
from sealproto import (NIL, TRUE, derive, frame, get, hello, hm, mp_array, mp_bin,  # noqa: E402
                       mp_map, mp_str, mp_uint, ping, psk_of, set_, stats)


def flash_push(rid, sid, typ, msg, ttl_ms=60000):
    return frame(mp_array([mp_uint(0x20), mp_uint(rid), NIL, mp_str(sid), mp_str(typ),
                           mp_str(msg), mp_uint(ttl_ms)]))


def hello_frame(rid, auth):
    return hello(rid, auth, name="x")


# --- the key exchange (PROTOCOL.md, "Sealed connections") ---
PSK = psk_of(SECRET)


def public_of(sk):
    return X25519PrivateKey.from_private_bytes(sk).public_key().public_bytes(
        Encoding.Raw, PublicFormat.Raw)


C_PK, S_PK = public_of(CLIENT_SK), public_of(SERVER_SK)
C_PROOF = hm(PSK, b"sessd-kx-v1 client", C_PK)


def server_proof():
    shared = X25519PrivateKey.from_private_bytes(SERVER_SK).exchange(
        X25519PublicKey.from_public_bytes(C_PK))
    return derive(PSK, shared, C_PK, S_PK)[2]


def right_reply_body():
    result = mp_map([(mp_str("version"), mp_uint(1)),
                     (mp_str("server_id"), mp_str("0123456789abcdef0123456789abcdef")),
                     (mp_str("auth"), TRUE),
                     (mp_str("kx"), mp_map([(mp_str("key"), mp_bin(S_PK)),
                                            (mp_str("proof"), mp_bin(server_proof()))]))])
    return mp_array([mp_uint(1), mp_uint(0), result])


# --- record scripts ---
def seal(plain):
    assert 1 <= len(plain) <= 65536
    return bytes([SEAL]) + struct.pack(">H", len(plain) - 1) + plain


def seal_zeros(n):
    """A record of n bytes of which the input holds none: zeros (only at the input's end)."""
    return bytes([SEAL]) + struct.pack(">H", n - 1)


def raw(b):
    return bytes([RAW, len(b)]) + b


def flip(at, bit=0):
    return bytes([FLIP]) + struct.pack(">HB", at, bit)


def replay(i):
    return bytes([REPLAY, i])


def drop(plain):
    return bytes([DROP, len(plain) - 1]) + plain


def cut(n):
    return bytes([CUT, n])


def length(v):
    return bytes([LENGTH]) + struct.pack(">I", v)


def end(reads=b""):
    return bytes([END]) + reads


def kx_auth(pk, proof):
    return mp_map([(mp_str("kx"), mp_bin(pk)), (mp_str("proof"), mp_bin(proof))])


LOW_ORDER = {
    "zero": "00" * 32,
    "one": "01" + "00" * 31,
    "order-8-a": "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
    "order-8-b": "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
    "p-minus-1": "ec" + "ff" * 30 + "7f",
    "p": "ed" + "ff" * 30 + "7f",
    "p-plus-1": "ee" + "ff" * 30 + "7f",
}


def seeds():
    p1, p2 = ping(1), ping(2)
    work = set_(3, "abc", b"data") + get(4, "abc") + flash_push(5, "abc", "t", "m") + stats(6)
    s = {}
    # RECORDS: a client's records at the server
    s["records-one-ping"] = seal(p1) + end()
    s["records-two-pings-one-record"] = seal(p1 + p2) + end()
    s["records-a-frame-across-two-records"] = seal(p1[:3]) + seal(p1[3:]) + end()
    s["records-read-byte-by-byte"] = seal(p1) + seal(p2) + end(b"\x00" * 64)
    s["records-wrong-tag"] = seal(p1) + flip(len(p1) + 20 - 1, 7) + end()
    s["records-changed-length-byte"] = seal(p1) + flip(3, 0) + end()
    s["records-changed-ciphertext-after-a-good-one"] = seal(p1) + seal(p2) + flip(
        len(p1) + 20 + 5) + end()
    s["records-replayed"] = seal(p1) + replay(0) + end()
    s["records-reordered"] = drop(p1) + seal(p2) + end()
    s["records-truncated"] = seal(p1) + cut(5) + end()
    s["records-truncated-header"] = seal(p1) + seal(p2) + cut(len(p2) + 18) + end()
    s["records-length-ffffffff"] = raw(b"\xff\xff\xff\xff") + end()
    s["records-length-0"] = raw(b"\x00\x00\x00\x00") + end()
    s["records-length-16-no-plaintext"] = seal(p1) + length(16) + end()
    s["records-length-65553-over-the-limit"] = seal(p1) + length(65553) + end()
    s["records-length-65552-lies"] = seal(p1) + length(65552) + end()
    s["records-largest-65536-bytes"] = seal(p1) + seal_zeros(65536)
    s["records-many-tiny"] = b"".join(seal(bytes([b])) for b in p1 * 20) + end()
    s["records-valid-tag-malformed-frame"] = seal(frame(b"\x93\x02\x01\xc1")) + end()
    s["records-valid-tag-frame-over-max-frame"] = seal(b"\x00\x10\x00\x01") + end()
    s["records-valid-tag-empty-frame"] = seal(b"\x00\x00\x00\x00") + end()
    s["records-valid-tag-frame-never-finished"] = seal(b"\x00\x00\x01\x00\x95") + end()
    # the harness's own limits (it once wrote past them): 512 records on the wire, or sealed
    s["records-replays-past-512-records-then-seal"] = seal(p1) + replay(0) * 520 + seal(
        p2) + end()
    s["records-drops-past-512-records-then-seal"] = drop(b"x") * 520 + seal(p2) + end()
    s["records-garbage-after-good"] = seal(p1) + raw(bytes(range(40))) + end()
    # HELLO: the real dispatch with a secret
    s["hello-right-kx-then-requests"] = bytes([HELLO, 2]) + seal(work) + end()
    s["hello-right-kx-requests-split"] = bytes([HELLO, 2]) + seal(work[:7]) + seal(
        work[7:]) + end(b"\x01\x02\x03\x00\x05")
    s["hello-right-kx-then-forged-record"] = bytes([HELLO, 2]) + seal(p1) + flip(9) + end()
    s["hello-right-kx-then-replay"] = bytes([HELLO, 2]) + seal(p1) + replay(0) + end()
    s["hello-right-kx-then-bad-frame"] = bytes([HELLO, 2]) + seal(
        frame(b"\x92\x02")) + seal(p2) + end()
    s["hello-right-kx-then-second-hello"] = bytes([HELLO, 2]) + seal(
        hello_frame(9, NIL)) + end()
    s["hello-right-kx-replays-past-512-records"] = bytes([HELLO, 2]) + seal(p1) + replay(
        0) * 520 + seal(p2) + end()
    s["hello-auth-empty"] = bytes([HELLO, 0, 0, 0])
    s["hello-kx-bits-flipped"] = bytes([HELLO, 1, 2]) + struct.pack(">HBHB", 5, 0, 50, 3)
    s["hello-kx-key-renamed"] = bytes([HELLO, 1, 1]) + struct.pack(">HB", 2, 0)
    for name, pk in LOW_ORDER.items():
        s["hello-low-order-key-" + name] = bytes([HELLO, 3]) + bytes.fromhex(pk)
    raws = {
        "nil": NIL,
        "the-secret-as-str": mp_str(SECRET),
        "the-secret-as-bin": mp_bin(SECRET),
        "kx-alone": mp_map([(mp_str("kx"), mp_bin(C_PK))]),
        "kx-and-proof-and-more": mp_map([(mp_str("kx"), mp_bin(C_PK)),
                                         (mp_str("proof"), mp_bin(C_PROOF)),
                                         (mp_str("x"), NIL)]),
        "kx-twice": mp_map([(mp_str("kx"), mp_bin(C_PK)), (mp_str("kx"), mp_bin(C_PK))]),
        "kx-as-str": mp_map([(mp_str("kx"), mp_str(C_PK)), (mp_str("proof"), mp_bin(C_PROOF))]),
        "kx-31-bytes": kx_auth(C_PK[:31], C_PROOF),
        "proof-33-bytes": kx_auth(C_PK, C_PROOF + b"\x00"),
        "wrong-proof": kx_auth(C_PK, bytes(32)),
        "right-kx-map32-header": b"\xde\x00\x02" + kx_auth(C_PK, C_PROOF)[1:],
        "map-of-int-keys": mp_map([(mp_uint(1), mp_bin(C_PK)), (mp_uint(2), mp_bin(C_PROOF))]),
        "huge-map-count": b"\xdf\xff\xff\xff\xff",
    }
    for name, auth in raws.items():
        s["hello-auth-" + name] = bytes([HELLO, 0]) + struct.pack(">H", len(auth)) + auth
    # REPLY: the client reading a HELLO reply
    body = right_reply_body()
    s["reply-right-then-replies"] = bytes([REPLY, 1, 0]) + seal(
        frame(mp_array([mp_uint(1), mp_uint(0), NIL]))) + end()
    s["reply-right-flipped-proof"] = bytes([REPLY, 1, 1]) + struct.pack(">HB", len(body) - 3, 0)
    s["reply-raw-right"] = bytes([REPLY, 0]) + body
    s["reply-raw-no-kx"] = bytes([REPLY, 0]) + mp_array([mp_uint(1), mp_uint(0), mp_map(
        [(mp_str("server_id"), mp_str("0123456789abcdef0123456789abcdef")),
         (mp_str("auth"), TRUE)])])
    s["reply-raw-auth-failed"] = bytes([REPLY, 0]) + mp_array(
        [mp_uint(1), mp_uint(9), mp_str("wrong proof of the secret")])
    kx = mp_map([(mp_str("key"), mp_bin(S_PK)), (mp_str("proof"), mp_bin(server_proof()))])
    s["reply-raw-kx-twice"] = bytes([REPLY, 0]) + mp_array([mp_uint(1), mp_uint(0), mp_map(
        [(mp_str("server_id"), mp_str("0123456789abcdef0123456789abcdef")),
         (mp_str("auth"), TRUE), (mp_str("kx"), kx), (mp_str("kx"), kx)])])
    for name in s:
        if name.startswith("records-"):
            s[name] = bytes([RECORDS]) + s[name]
    return s


def main():
    os.makedirs(OUT, exist_ok=True)
    for name in os.listdir(OUT):
        os.unlink(os.path.join(OUT, name))
    for name, data in sorted(seeds().items()):
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
    print(f"wrote {len(seeds())} seeds to {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
