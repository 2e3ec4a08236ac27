#!/usr/bin/env python3
"""Write protocol/seal-vectors.json: a worked sealed-connection exchange (PROTOCOL.md,
"Sealed connections"), computed with Python's `cryptography` package, independently of the C
(protocol/seal.c) and Node (client/node) code, which both check themselves against it.
Run from anywhere (needs python3-cryptography):
    python3 protocol/gen-seal-vectors.py > protocol/seal-vectors.json
"""
import hashlib
import hmac
import json
import struct

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat


def raw_public(private):
    return private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def hmac256(key, *parts):
    return hmac.new(key, b"".join(parts), hashlib.sha256).digest()


def record(key, number, plain):
    header = struct.pack(">I", len(plain) + 16)
    nonce = b"\0" * 4 + struct.pack("<Q", number)
    return header + ChaCha20Poly1305(key).encrypt(nonce, plain, header)


def frame(body):
    return struct.pack(">I", len(body)) + body


def bin32(v):
    assert len(v) == 32
    return b"\xc4\x20" + v


secret = b"correct horse battery staple, 32"
client_secret = bytes(range(1, 33))
server_secret = bytes(range(101, 133))

psk = hmac256(b"sessd-psk-v1", secret)
c_priv = X25519PrivateKey.from_private_bytes(client_secret)
s_priv = X25519PrivateKey.from_private_bytes(server_secret)
c_pk, s_pk = raw_public(c_priv), raw_public(s_priv)
client_proof = hmac256(psk, b"sessd-kx-v1 client", c_pk)
shared = s_priv.exchange(X25519PublicKey.from_public_bytes(c_pk))
assert shared == c_priv.exchange(X25519PublicKey.from_public_bytes(s_pk))
okm = HKDF(algorithm=hashes.SHA256(), length=96, salt=psk,
           info=b"sessd-kx-v1 keys" + c_pk + s_pk).derive(shared)
key_c2s, key_s2c, key_confirm = okm[:32], okm[32:64], okm[64:]
server_proof = hmac256(key_confirm, b"sessd-kx-v1 server", c_pk, s_pk)

# HELLO's auth value and the reply's kx value, as MessagePack.
auth = b"\x82" + b"\xa2kx" + bin32(c_pk) + b"\xa5proof" + bin32(client_proof)
kx = b"\x82" + b"\xa3key" + bin32(s_pk) + b"\xa5proof" + bin32(server_proof)

# GET "abc" in the default namespace, request id 7: [16, 7, nil, "abc"]
get = frame(b"\x94\x10\x07\xc0\xa3abc")
# Its NOT_FOUND reply: [7, 1, nil]
not_found = frame(b"\x93\x07\x01\xc0")
records = [
    {"direction": "c2s", "number": 0, "plain": get},
    {"direction": "c2s", "number": 1, "plain": get + get},
    {"direction": "s2c", "number": 0, "plain": not_found},
    {"direction": "s2c", "number": 1, "plain": bytes(range(256)) * 4},
]
out = {
    "secret_hex": secret.hex(),
    "psk_hex": psk.hex(),
    "client_secret_hex": client_secret.hex(),
    "client_public_hex": c_pk.hex(),
    "client_proof_hex": client_proof.hex(),
    "auth_hex": auth.hex(),
    "server_secret_hex": server_secret.hex(),
    "server_public_hex": s_pk.hex(),
    "shared_hex": shared.hex(),
    "key_c2s_hex": key_c2s.hex(),
    "key_s2c_hex": key_s2c.hex(),
    "key_confirm_hex": key_confirm.hex(),
    "server_proof_hex": server_proof.hex(),
    "kx_hex": kx.hex(),
    "records": [
        {
            "direction": r["direction"],
            "number": r["number"],
            "plain_hex": r["plain"].hex(),
            "record_hex": record(key_c2s if r["direction"] == "c2s" else key_s2c, r["number"],
                                 r["plain"]).hex(),
        }
        for r in records
    ],
}
print(json.dumps(out, indent=1))
