"""Checks sessdwire against protocol/vectors.json and seal-vectors.json, as PROTOCOL.md,
"Test vectors" and "Sealed connections", describe them. Also holds the request validator
written from the Types and Operations tables, which a client needs only to check vectors."""

import json
import struct

from sessdwire import (Malformed, MapItems, Str, Raw, Reader, is_uint, pack, unpack, parse_reply,
                       psk_of, client_proof, derive, x25519, x25519_base, seal_record,
                       open_record, TTL_MAX, STATUS_NUM, tag)


class Bad(Exception):
    pass


def _ns(v, stats=False):
    if v is None:
        return None
    if isinstance(v, Str) and 1 <= len(v) <= 64:
        return v
    raise Bad("ns")


def _id(v):
    if isinstance(v, bytes) and 1 <= len(v) <= 128:
        return v
    raise Bad("id")


def _uint(v):
    if is_uint(v) and v < 1 << 64:
        return v
    raise Bad("uint")


def _ttl(v):
    v = _uint(v)
    if 1 <= v <= TTL_MAX:
        return v
    raise Bad("ttl")


def _type(v):
    if isinstance(v, Str) and 1 <= len(v) <= 64:
        return v
    raise Bad("type")


def _msg(v):
    if isinstance(v, bytes):
        return v
    raise Bad("msg")


def _data(v):
    if isinstance(v, bytes):
        return v
    raise Bad("data")


def _tag(v):
    if isinstance(v, bytes) and not isinstance(v, Str) and len(v) == 16:
        return v
    raise Bad("tag")


SHAPES = {
    0x10: ["ns", "id"], 0x13: ["ns", "id"], 0x15: ["ns", "id"], 0x16: ["ns", "id"],
    0x11: ["ns", "id", "data", "ttl"], 0x14: ["ns", "id", "data", "ttl", "tag"],
    0x12: ["ns", "id", "ttl"], 0x17: ["ns", "id", "ttl", "tag"],
    0x20: ["ns", "id", "type", "msg", "ttl"], 0x22: ["ns", "id", "type", "msg", "ttl"],
    0x21: ["ns", "id", "typenil"], 0x23: ["ns", "id", "type", "msg"],
    0x30: ["ns"], 0x31: ["ns", "uint", "limit"], 0x32: ["ns"], 0x33: ["ns"],
    0x34: ["uint", "limit"],
}
CHECK = {"ns": _ns, "id": _id, "data": _data, "ttl": _ttl, "tag": _tag, "type": _type,
         "msg": _msg, "uint": _uint, "limit": lambda v: min(max(_uint(v), 1), 1000),
         "typenil": lambda v: None if v is None else _type(v)}


def decode_request(body):
    """Returns (op, rid, fields) or raises Bad/Malformed (BAD_REQUEST) or KeyError (UNKNOWN_OP)."""
    v = unpack(body)
    if not isinstance(v, list) or len(v) < 2 or not is_uint(v[0]) or not is_uint(v[1]):
        raise Bad("not [op, id, ...]")
    op, rid, args = v[0], v[1], v[2:]
    if op == 0x01:
        if len(args) != 3 or not is_uint(args[0]) or not isinstance(args[1], Str) or len(args[1]) > 64:
            raise Bad("hello")
        # The auth value's raw bytes, as a decoder hands them on (PROTOCOL.md, HELLO).
        r = Reader(body)
        r.u(1)
        for _ in range(4):
            r.value(2)
        p = r.p
        r.value(2)
        return op, rid, args[:2] + [bytes(body[p:r.p])]
    if op == 0x02:
        if len(args) > 1 or (args and not isinstance(args[0], bytes)):
            raise Bad("ping")
        return op, rid, args
    if op == 0x03:
        if len(args) != 1 or not isinstance(args[0], bytes) or isinstance(args[0], Str) or len(args[0]) != 32:
            raise Bad("retire")
        return op, rid, args
    if op not in SHAPES:
        raise KeyError(op)
    shape = SHAPES[op]
    if len(args) != len(shape):
        raise Bad("argument count")
    return op, rid, [CHECK[s](a) for s, a in zip(shape, args)]


def closing_reply_id(body):
    """The request id a closing reply carries, by the rule in "Errors that close"."""
    r = Reader(body)
    try:
        c = r.u(1)
        if 0x90 <= c <= 0x9F:
            n = c & 0x0F
        elif c == 0xDC:
            n = r.u(2)
        elif c == 0xDD:
            n = r.u(4)
        else:
            return 0
        if n < 2:
            return 0
        r.value(2)
        rid = r.value(2)
        return rid if is_uint(rid) else 0
    except Malformed:
        return 0


def _int(x):
    return int(x) if isinstance(x, str) else x


def request_fields(op, rid, args):
    """What a decoder produces, in the vector file's field names."""
    f = {"op": op, "request_id": rid}
    def put_id(v):
        if isinstance(v, Str):
            f["id"] = v.decode("ascii")
        else:
            f["id_hex"] = v.hex()
    def put_msg(v):
        if isinstance(v, Str):
            f["msg"] = v.decode("ascii")
        else:
            f["msg_hex"] = v.hex()
    ns = lambda v: None if v is None else v.decode("ascii")
    if op == 0x01:
        f.update(version=args[0], client_name=args[1].decode("ascii"), auth_hex=args[2].hex())
        return f
    if op == 0x02:
        if args:
            f.update(ping_payload=True, data_hex=args[0].hex())
        return f
    if op == 0x03:
        f["key_hex"] = args[0].hex()
        return f
    shape = SHAPES[op]
    for s, a in zip(shape, args):
        if s == "ns":
            f["ns"] = ns(a)
        elif s == "id":
            put_id(a)
        elif s == "data":
            f["data_hex"] = a.hex()
        elif s == "ttl":
            f["ttl_ms"] = a
        elif s == "tag":
            f["expect_hex"] = a.hex()
        elif s in ("type", "typenil"):
            f["type"] = None if a is None else a.decode("ascii")
        elif s == "msg":
            put_msg(a)
        elif s == "uint":
            f["cursor"] = a
        elif s == "limit":
            f["limit"] = a
    return f


def encode_request(req, name):
    """Encodes a valid request vector's fields, shortest forms, as the spec says an encoder does."""
    op, rid = req["op"], _int(req["request_id"])
    a = []
    ns = lambda: None if req["ns"] is None else Str(req["ns"].encode())
    idv = lambda: Str(req["id"].encode()) if "id" in req else bytes.fromhex(req["id_hex"])
    msg = lambda: Str(req["msg"].encode()) if "msg" in req else bytes.fromhex(req["msg_hex"])
    if op == 0x01:
        a = [req["version"], Str(req["client_name"].encode()), Raw(bytes.fromhex(req["auth_hex"]))]
    elif op == 0x02:
        if req.get("ping_payload"):
            p = bytes.fromhex(req["data_hex"])
            a = [Str(p) if "str" in name else p]
    elif op == 0x03:
        a = [bytes.fromhex(req["key_hex"])]
    else:
        for s in SHAPES[op]:
            if s == "ns":
                a.append(ns())
            elif s == "id":
                a.append(idv())
            elif s == "data":
                a.append(bytes.fromhex(req["data_hex"]))
            elif s == "ttl":
                a.append(req["ttl_ms"])
            elif s == "tag":
                a.append(bytes.fromhex(req["expect_hex"]))
            elif s in ("type", "typenil"):
                a.append(None if req["type"] is None else Str(req["type"].encode()))
            elif s == "msg":
                a.append(msg())
            elif s == "uint":
                a.append(_int(req["cursor"]))
            elif s == "limit":
                a.append(req["limit"])
    body = pack([op, rid] + a)
    return struct.pack(">I", len(body)) + body


def classify(frame, max_frame):
    """What a server answers to a whole frame after HELLO: ('OK'|status, request id)."""
    ln = struct.unpack(">I", frame[:4])[0]
    if ln == 0:
        return "BAD_REQUEST", 0
    if ln > max_frame:
        return "TOO_LARGE", 0
    body = frame[4:]
    try:
        op, rid, _ = decode_request(body)
        return "OK", rid
    except KeyError:
        return "UNKNOWN_OP", unpack(body)[1]
    except (Bad, Malformed):
        return "BAD_REQUEST", closing_reply_id(body)


def check_vectors(path, t):
    vs = json.load(open(path))
    names = [v["name"] for v in vs]
    t.ok("vectors: names unique", len(names) == len(set(names)))
    for v in vs:
        frame = bytes.fromhex(v["hex"])
        nm = v["name"]
        if v["kind"] == "request" and "request" in v:
            req = {k: _int(x) if k in ("request_id", "cursor") else x for k, x in v["request"].items()}
            t.ok("header length = body: " + nm, struct.unpack(">I", frame[:4])[0] == len(frame) - 4)
            try:
                op, rid, args = decode_request(frame[4:])
                got = request_fields(op, rid, args)
                t.ok("decode: " + nm, got == req, "%r != %r" % (got, req))
            except Exception as e:
                t.ok("decode: " + nm, False, repr(e))
            if v.get("canonical", True):
                enc = encode_request(req, nm)
                t.ok("encode: " + nm, enc == frame, enc.hex())
            if "expect_tag_of_hex" in v:
                t.ok("tag: " + nm, tag(bytes.fromhex(v["expect_tag_of_hex"])).hex() == req["expect_hex"])
        elif v["kind"] == "request":
            st, rid = classify(frame, v.get("max_frame", 1048576))
            t.ok("reject: " + nm, st == v["error"], "classified %s" % st)
            if st == "UNKNOWN_OP":
                t.ok("unknown op id: " + nm, rid == _int(v["request_id"]))
        elif "reply" in v:
            rep = v["reply"]
            try:
                r = parse_reply(frame[4:])
                hdr = pack([]) and None
                body = bytes([0x93]) + pack(_int(rep["request_id"])) + pack(rep["status"]) + bytes.fromhex(rep["result_hex"])
                ok = (r.request_id == _int(rep["request_id"]) and r.status == rep["status"]
                      and struct.pack(">I", len(body)) + body == frame)
                if "message" in rep:
                    ok = ok and r.result == rep["message"].encode()
                t.ok("reply: " + nm, ok)
            except Exception as e:
                t.ok("reply: " + nm, False, repr(e))
        else:
            try:
                parse_reply(frame[4:])
                t.ok("malformed reply rejected: " + nm, False, "accepted")
            except Malformed:
                t.ok("malformed reply rejected: " + nm, True)
    return vs


def check_seal_vectors(path, t):
    s = {k: (bytes.fromhex(x) if k.endswith("_hex") else x) for k, x in json.load(open(path)).items()}
    psk = psk_of(s["secret_hex"])
    t.ok("seal: psk", psk == s["psk_hex"])
    c_pk = x25519_base(s["client_secret_hex"])
    t.ok("seal: c_pk", c_pk == s["client_public_hex"])
    t.ok("seal: client proof", client_proof(psk, c_pk) == s["client_proof_hex"])
    t.ok("seal: auth msgpack", pack({"kx": c_pk, "proof": s["client_proof_hex"]}) == s["auth_hex"])
    s_pk = x25519_base(s["server_secret_hex"])
    t.ok("seal: s_pk", s_pk == s["server_public_hex"])
    shared = x25519(s["client_secret_hex"], s_pk)
    t.ok("seal: shared (client side)", shared == s["shared_hex"])
    t.ok("seal: shared (server side)", x25519(s["server_secret_hex"], c_pk) == shared)
    c2s, s2c, conf, proof = derive(psk, shared, c_pk, s_pk)
    t.ok("seal: key_c2s", c2s == s["key_c2s_hex"])
    t.ok("seal: key_s2c", s2c == s["key_s2c_hex"])
    t.ok("seal: key_confirm", conf == s["key_confirm_hex"])
    t.ok("seal: server proof", proof == s["server_proof_hex"])
    t.ok("seal: kx msgpack", pack({"key": s_pk, "proof": proof}) == s["kx_hex"])
    for i, rec in enumerate(s["records"]):
        key = c2s if rec["direction"] == "c2s" else s2c
        plain, want = bytes.fromhex(rec["plain_hex"]), bytes.fromhex(rec["record_hex"])
        t.ok("seal: record %d seals" % i, seal_record(key, rec["number"], plain) == want)
        t.ok("seal: record %d opens" % i, open_record(key, rec["number"], want[:4], want[4:]) == plain)


# The frames PROTOCOL.md writes out in its own text ("On the wire"), as hex.
SPEC_EXAMPLES = [
    ("LOAD request", [0x16, 47, None, Str(b"abc")], "0000000894162fc0a3616263"),
    ("TTL request", [0x15, 45, None, Str(b"abc")], "0000000894152dc0a3616263"),
    ("TTL reply", [45, 0, 3599870], "00000008932d00ce0036edfe"),
    ("TOUCH_IF request", [0x17, 48, None, Str(b"abc"), 2592000000, tag(b'{"user":42}')],
     "0000001f961730c0a3616263ce9a7ec800c410d9ea1c428210bdb2c87db3d5e2b5d395"),
    ("TOUCH_IF reply", [48, 0, None], "00000004933000c0"),
    ("DESTROY_IF_FLASH request", [0x23, 52, Str(b"locks"), Str(b"k"), Str(b"move"), bytes(range(16))],
     "00000022962334a56c6f636b73a16ba46d6f7665c410000102030405060708090a0b0c0d0e0f"),
    ("DESTROY_IF_FLASH reply", [52, 0, None], "00000004933400c0"),
    ("NAMESPACES request", [0x34, 44, 0, 1000], "0000000794342c00cd03e8"),
    ("NAMESPACES reply", [44, 0, [0, [[Str(b"shop"), 3], [Str(b"default"), 1]]]],
     "00000017932c0092009292a473686f700392a764656661756c7401"),
]


def check_spec_examples(t):
    for name, value, hexed in SPEC_EXAMPLES:
        body = pack(value)
        t.ok("spec example: " + name, (struct.pack(">I", len(body)) + body).hex() == hexed)
    t.ok("spec example: the empty data's tag", tag(b"").hex() == "786a02f742015903c6c6fd852552d272")
