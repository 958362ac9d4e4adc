#!/usr/bin/env python3
"""Generates protocol/vectors/*.json (except close-codes.json, which is edited by
hand and is the source of the close-code table in Docs/protocol.md).

    python3 protocol/generate/gen.py           # rewrite the vectors and the doc's close-code table
    python3 protocol/generate/gen.py --check   # regenerate in memory, diff, exit 1 on any difference

Everything is deterministic: fixed keys, nonces, timestamps. The crypto is
computed here with Python's `cryptography` (AES-GCM, ChaCha20-Poly1305, HKDF,
Ed25519) plus the standard library (HMAC, SHA-256); XChaCha20 is HChaCha20
(written out below) over cryptography's ChaCha20-Poly1305. The y-protocols
messages come from real Yjs in node (yprotocols.js). crosscheck.php recomputes
the crypto vectors with PHP (openssl, hash, sodium), and crosscheck_relayctl.py
confirms them with relayctl.
"""
import base64
import difflib
import hashlib
import hmac
import json
import os
import struct
import subprocess
import sys

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives import serialization

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
VECTORS = os.path.join(ROOT, "protocol", "vectors")
DOC = os.path.join(ROOT, "Docs", "protocol.md")

GENERATED_BY = "protocol/generate/gen.py (Python 3, cryptography, hmac/hashlib)"

# ---------------------------------------------------------------- fixed inputs

NOW = 1767225600                 # 2026-01-01T00:00:00Z
NOW_MS = NOW * 1000 + 250
SITE_KEY = "0123456789abcdef0123456789abcdef"
SITE_ID = hashlib.sha256(("site:" + SITE_KEY).encode()).hexdigest()
TENANT_ID = hashlib.sha256(("tenant:" + SITE_KEY).encode()).hexdigest()
OTHER_SITE_KEY = "fedcba9876543210fedcba9876543210"
OTHER_SITE_ID = hashlib.sha256(("site:" + OTHER_SITE_KEY).encode()).hexdigest()
PUBLISH_SECRET = "5f3c2a1b0e9d8c7b6a5f4e3d2c1b0a99887766554433221100ffeeddccbbaa00"
PUBLISH_KEY_ID = "k1"
WRONG_SECRET = "0000000000000000000000000000000000000000000000000000000000000000"
JWT_SECRET = "9a8b7c6d5e4f30211203f4e5d6c7b8a99a8b7c6d5e4f30211203f4e5d6c7b8a9"
ED25519_SEED = bytes(range(32))  # 000102…1f
ENCRYPTION_SEED = "vector-AUTH_KEY-put your unique phrase here" + "vector-SECURE_AUTH_KEY-put your unique phrase here"
V2_KID = "2026-11"

# ---------------------------------------------------------------- helpers


def b64(b):
    return base64.b64encode(b).decode()


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def compact(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def php_json_encode(obj):
    """PHP json_encode() with default flags: `/` escaped as `\\/`, non-ASCII as \\uXXXX."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=True).replace("/", "\\/")


def hkdf(ikm, salt, info):
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(ikm)


def full(name):
    return "site:%s:%s" % (SITE_ID, name)


# ---------------------------------------------------------------- XChaCha20-Poly1305

def _rotl(v, n):
    return ((v << n) & 0xFFFFFFFF) | (v >> (32 - n))


def _qr(s, a, b, c, d):
    s[a] = (s[a] + s[b]) & 0xFFFFFFFF; s[d] = _rotl(s[d] ^ s[a], 16)
    s[c] = (s[c] + s[d]) & 0xFFFFFFFF; s[b] = _rotl(s[b] ^ s[c], 12)
    s[a] = (s[a] + s[b]) & 0xFFFFFFFF; s[d] = _rotl(s[d] ^ s[a], 8)
    s[c] = (s[c] + s[d]) & 0xFFFFFFFF; s[b] = _rotl(s[b] ^ s[c], 7)


def hchacha20(key, nonce16):
    s = [0x61707865, 0x3320646E, 0x79622D32, 0x6B206574]
    s += list(struct.unpack("<8I", key)) + list(struct.unpack("<4I", nonce16))
    for _ in range(10):
        _qr(s, 0, 4, 8, 12); _qr(s, 1, 5, 9, 13); _qr(s, 2, 6, 10, 14); _qr(s, 3, 7, 11, 15)
        _qr(s, 0, 5, 10, 15); _qr(s, 1, 6, 11, 12); _qr(s, 2, 7, 8, 13); _qr(s, 3, 4, 9, 14)
    return struct.pack("<8I", *(s[0:4] + s[12:16]))


def xc20p_seal(key, nonce24, plaintext, aad):
    sub = hchacha20(key, nonce24[:16])
    return ChaCha20Poly1305(sub).encrypt(b"\0\0\0\0" + nonce24[16:], plaintext, aad)


def xc20p_open(key, nonce24, ct, aad):
    sub = hchacha20(key, nonce24[:16])
    return ChaCha20Poly1305(sub).decrypt(b"\0\0\0\0" + nonce24[16:], ct, aad)


def _selftest_xchacha():
    # draft-irtf-cfrg-xchacha-03 §2.2.1 (HChaCha20) test vector.
    k = bytes.fromhex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
    n = bytes.fromhex("000000090000004a0000000031415927")
    assert hchacha20(k, n).hex() == "82413b4227b27bfed30e42508a877d73a0f9e4d58a74a853c12ec41326d3ecdc"
    # §A.3.1 (AEAD_XChaCha20_Poly1305).
    pt = (b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, "
          b"sunscreen would be it.")
    aad = bytes.fromhex("50515253c0c1c2c3c4c5c6c7")
    key = bytes.fromhex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f")
    iv = bytes.fromhex("404142434445464748494a4b4c4d4e4f5051525354555657")
    out = xc20p_seal(key, iv, pt, aad)
    assert out[-16:].hex() == "c0875924c1c7987947deafd8780acf49", out[-16:].hex()


# ---------------------------------------------------------------- JSON rules (reference validator)

class Invalid(Exception):
    def __init__(self, rule):
        self.rule = rule


MAX_DEPTH = 64


def strict_json(data: bytes):
    """Reference validator for the protocol's JSON rules. Returns None or the rule broken."""
    try:
        text = data.decode("utf-8", errors="strict")   # rejects overlongs, encoded surrogates, > U+10FFFF
    except UnicodeDecodeError:
        return "utf8"
    p = _Parser(text)
    try:
        p.ws()
        p.value(0)
        p.ws()
        if p.i != len(text):
            raise Invalid(p.unexpected())
    except Invalid as e:
        return e.rule
    return None


class _Parser:
    def __init__(self, t):
        self.t = t
        self.i = 0

    def peek(self):
        return self.t[self.i] if self.i < len(self.t) else None

    def ws(self):
        while self.i < len(self.t) and self.t[self.i] in " \t\n\r":
            self.i += 1

    def value(self, depth):
        c = self.peek()
        if c is None:
            raise Invalid("structure")
        if c in "{[":
            if depth + 1 > MAX_DEPTH:
                raise Invalid("depth")
            return self.obj(depth + 1) if c == "{" else self.arr(depth + 1)
        if c == '"':
            return self.string()
        for lit in ("true", "false", "null"):
            if self.t.startswith(lit, self.i):
                self.i += len(lit)
                return
        if c == "-" or c.isdigit():
            return self.number()
        if c == "\ufeff":
            raise Invalid("bom")
        if c in "\x0b\x0c\xa0":
            raise Invalid("whitespace")
        raise Invalid("literal" if c.isalpha() else "structure")

    def unexpected(self):
        c = self.peek()
        if c in ("\x0b", "\x0c", "\xa0"):
            return "whitespace"
        if c == "\ufeff":
            return "bom"
        return "structure"

    def number(self):
        t = self.t
        if self.peek() == "-":
            self.i += 1
        if self.peek() is None or not self.peek().isdigit():
            raise Invalid("number")
        if self.peek() == "0":
            self.i += 1
            if self.peek() is not None and self.peek().isdigit():
                raise Invalid("number")
        else:
            while self.peek() is not None and self.peek().isdigit():
                self.i += 1
        if self.peek() == ".":
            self.i += 1
            if self.peek() is None or not self.peek().isdigit():
                raise Invalid("number")
            while self.peek() is not None and self.peek().isdigit():
                self.i += 1
        if self.peek() in ("e", "E"):
            self.i += 1
            if self.peek() in ("+", "-"):
                self.i += 1
            if self.peek() is None or not self.peek().isdigit():
                raise Invalid("number")
            while self.peek() is not None and self.peek().isdigit():
                self.i += 1
        nxt = self.peek()
        if nxt is not None and (nxt.isalnum() or nxt in ".+-"):
            raise Invalid("number")
        _ = t

    def string(self):
        self.i += 1
        out = []
        while True:
            c = self.peek()
            if c is None:
                raise Invalid("string")
            self.i += 1
            if c == '"':
                return "".join(out)
            if ord(c) < 0x20:
                raise Invalid("string")
            if c != "\\":
                out.append(c)
                continue
            e = self.peek()
            self.i += 1
            if e is not None and e in '"\\/bfnrt':
                out.append({"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}.get(e, e))
                continue
            if e != "u":
                raise Invalid("string")
            cu = self.hex4()
            if 0xD800 <= cu <= 0xDBFF:
                if self.t.startswith("\\u", self.i):
                    self.i += 2
                    lo = self.hex4()
                    if 0xDC00 <= lo <= 0xDFFF:
                        out.append(chr(0x10000 + ((cu - 0xD800) << 10) + (lo - 0xDC00)))
                        continue
                raise Invalid("lone_surrogate")
            if 0xDC00 <= cu <= 0xDFFF:
                raise Invalid("lone_surrogate")
            out.append(chr(cu))

    def hex4(self):
        h = self.t[self.i:self.i + 4]
        if len(h) != 4 or any(ch not in "0123456789abcdefABCDEF" for ch in h):
            raise Invalid("string")
        self.i += 4
        return int(h, 16)

    def obj(self, depth):
        self.i += 1
        self.ws()
        names = set()
        if self.peek() == "}":
            self.i += 1
            return
        while True:
            self.ws()
            if self.peek() != '"':
                raise Invalid("trailing_comma" if self.peek() == "}" else self.unexpected())
            name = self.string()
            if name in names:
                raise Invalid("duplicate_key")
            names.add(name)
            self.ws()
            if self.peek() != ":":
                raise Invalid("structure")
            self.i += 1
            self.ws()
            self.value(depth)
            self.ws()
            c = self.peek()
            self.i += 1
            if c == "}":
                return
            if c != ",":
                self.i -= 1
                raise Invalid(self.unexpected())

    def arr(self, depth):
        self.i += 1
        self.ws()
        if self.peek() == "]":
            self.i += 1
            return
        while True:
            self.ws()
            if self.peek() == "]":
                raise Invalid("trailing_comma")
            self.value(depth)
            self.ws()
            c = self.peek()
            self.i += 1
            if c == "]":
                return
            if c != ",":
                self.i -= 1
                raise Invalid(self.unexpected())


def second_opinion(data: bytes):
    """Python's json module plus the checks it lacks; must agree with strict_json on validity."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    if text.startswith("\ufeff"):
        return False

    def pairs(items):
        keys = [k for k, _ in items]
        if len(keys) != len(set(keys)):
            raise ValueError("duplicate")
        return dict(items)

    def bad_constant(name):
        raise ValueError(name)

    try:
        value = json.loads(text, object_pairs_hook=pairs, parse_constant=bad_constant)
    except (ValueError, RecursionError):
        return False

    def walk(v, depth):
        if isinstance(v, (dict, list)):
            depth += 1
            if depth > MAX_DEPTH:
                return False
            items = list(v.items()) if isinstance(v, dict) else [(None, x) for x in v]
            for k, x in items:
                if k is not None and any(0xD800 <= ord(ch) <= 0xDFFF for ch in k):
                    return False
                if not walk(x, depth):
                    return False
            return True
        if isinstance(v, str):
            return not any(0xD800 <= ord(ch) <= 0xDFFF for ch in v)
        return True

    return walk(value, 0)


def json_vectors():
    cases = []

    def case(name, raw, valid, rule, note=None):
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogatepass")
        got = strict_json(raw)
        assert (got is None) == valid, (name, got)
        if not valid:
            assert got == rule, (name, got, rule)
        assert second_opinion(raw) == valid, ("second opinion", name)
        c = {"name": name, "input_hex": raw.hex()}
        try:
            c["input"] = raw.decode("utf-8")
        except UnicodeDecodeError:
            pass
        c["valid"] = valid
        c["rule"] = rule
        if note:
            c["note"] = note
        cases.append(c)

    # utf8
    case("utf8_plain", '{"name":"café ☕ 😀"}', True, "utf8")
    case("utf8_overlong_slash", b'"\xc0\xaf"', False, "utf8", "overlong 2-byte encoding of '/'")
    case("utf8_overlong_3byte", b'"\xe0\x80\xaf"', False, "utf8", "overlong 3-byte encoding of '/'")
    case("utf8_overlong_4byte", b'"\xf0\x80\x80\xaf"', False, "utf8", "overlong 4-byte encoding of '/'")
    case("utf8_encoded_surrogate", b'"\xed\xa0\x80"', False, "utf8", "U+D800 encoded as UTF-8 (CESU)")
    case("utf8_above_max", b'"\xf4\x90\x80\x80"', False, "utf8", "U+110000")
    case("utf8_stray_continuation", b'"\x80"', False, "utf8")
    case("utf8_truncated", b'"\xe2\x98"', False, "utf8", "first two bytes of U+2615")
    case("utf8_latin1", b'{"name":"caf\xe9"}', False, "utf8", "ISO-8859-1 byte, not UTF-8")
    case("nbsp_between_tokens", b'[1,\xc2\xa0 2]', False, "whitespace", "valid UTF-8 (U+00A0) but not JSON whitespace")
    # lone surrogates
    case("surrogate_pair", '"\\uD83D\\uDE00"', True, "lone_surrogate", "U+1F600 as an escaped pair")
    case("surrogate_pair_lowercase", '"\\ud83d\\ude00"', True, "lone_surrogate")
    case("lone_high", '"\\uD800"', False, "lone_surrogate")
    case("lone_low", '"\\uDC00"', False, "lone_surrogate")
    case("high_then_char", '"\\uD800x"', False, "lone_surrogate")
    case("high_then_non_low_escape", '"\\uD800\\u0041"', False, "lone_surrogate")
    case("reversed_pair", '"\\uDE00\\uD83D"', False, "lone_surrogate")
    case("lone_surrogate_in_key", '{"\\uDBFF":1}', False, "lone_surrogate")
    case("escaped_bmp", '"\\u00e9\\u2615\\u0000"', True, "lone_surrogate", "escapes outside D800–DFFF, including U+0000, are fine")
    # duplicates
    case("duplicate_top_level", '{"a":1,"a":2}', False, "duplicate_key")
    case("duplicate_same_value", '{"a":1,"a":1}', False, "duplicate_key")
    case("duplicate_nested", '{"x":{"b":true,"b":false}}', False, "duplicate_key")
    case("duplicate_in_array", '[{"a":1},{"a":1,"a":2}]', False, "duplicate_key")
    case("duplicate_after_unescaping", '{"a":1,"\\u0061":2}', False, "duplicate_key", "names are compared after unescaping")
    case("duplicate_type_frame", '{"type":"subscribe","channels":["events"],"type":"unsubscribe"}', False, "duplicate_key")
    case("distinct_keys_case", '{"a":1,"A":2}', True, "duplicate_key", "names are case-sensitive")
    case("same_key_different_objects", '{"a":{"a":{"a":1}}}', True, "duplicate_key")
    # depth
    case("depth_64_arrays", "[" * 64 + "]" * 64, True, "depth")
    case("depth_65_arrays", "[" * 65 + "]" * 65, False, "depth")
    case("depth_64_objects", '{"a":' * 63 + "{}" + "}" * 63, True, "depth")
    case("depth_65_objects", '{"a":' * 64 + "{}" + "}" * 64, False, "depth")
    case("depth_64_mixed", '[{"a":' * 32 + "0" + "}]" * 32, True, "depth")
    case("depth_65_mixed", '[{"a":' * 32 + "[]" + "}]" * 32, False, "depth")
    # numbers
    for name, text, ok in [
        ("number_zero", "0", True), ("number_negative_zero", "-0", True), ("number_int", "[123,-45]", True),
        ("number_fraction", "1.5", True), ("number_exponent", "[1e5,1E+2,2.5e-3,-0.0e0]", True),
        ("number_huge", "1e400", True), ("number_long", "123456789012345678901234567890", True),
        ("number_leading_zero", "01", False), ("number_negative_leading_zero", "-01", False),
        ("number_double_zero", "[00]", False), ("number_leading_plus", "+1", False),
        ("number_trailing_dot", "1.", False), ("number_leading_dot", ".5", False),
        ("number_bare_exponent", "1e", False), ("number_exponent_sign_only", "1e+", False),
        ("number_minus_only", "-", False), ("number_hex", "0x10", False),
        ("number_nan", "NaN", False), ("number_infinity", "[Infinity]", False), ("number_minus_infinity", "-Infinity", False),
    ]:
        rule = "number"
        if not ok and text in ("+1", ".5"):
            rule = "structure"
        if text in ("NaN", "[Infinity]"):
            rule = "literal"
        case(name, text, ok, rule, "numbers follow the RFC 8259 grammar; size is not limited by the JSON rules" if name == "number_huge" else None)
    # trailing commas and structure
    case("trailing_comma_array", "[1,2,]", False, "trailing_comma")
    case("trailing_comma_object", '{"a":1,}', False, "trailing_comma")
    case("empty_input", "", False, "structure")
    case("only_whitespace", " \n", False, "structure")
    case("two_values", "{} {}", False, "structure")
    case("comment", '{"a":1 /* c */}', False, "structure")
    case("line_comment", '// c\n{}', False, "structure")
    case("single_quotes", "{'a':1}", False, "structure")
    case("unquoted_key", "{a:1}", False, "structure")
    case("missing_colon", '{"a" 1}', False, "structure")
    case("unclosed_array", "[1,2", False, "structure")
    case("top_level_scalar", '"just a string"', True, "structure", "any JSON value is a JSON text; frames and bodies additionally require an object")
    # literals
    case("literals", "[true,false,null]", True, "literal")
    case("literal_capitalised", "True", False, "literal")
    case("literal_truncated", "[nul]", False, "literal")
    # BOM
    case("bom", b"\xef\xbb\xbf{}", False, "bom", "a UTF-8 byte order mark is not allowed")
    # whitespace
    case("whitespace_all_four", ' \t\r\n{ "a" :\t[ 1 ,\r\n2 ] }\n', True, "whitespace")
    case("whitespace_form_feed", "{\f}", False, "whitespace")
    case("whitespace_vertical_tab", "\x0b{}", False, "whitespace")
    case("whitespace_nbsp", "\u00a0{}", False, "whitespace", "U+00A0 is not JSON whitespace")
    # strings
    case("string_raw_control", '"a\x01b"', False, "string", "U+0000–U+001F must be escaped")
    case("string_raw_tab", '"a\tb"', False, "string")
    case("string_raw_newline", '"a\nb"', False, "string")
    case("string_del_raw", '"a\x7fb"', True, "string", "U+007F may appear raw")
    case("string_bad_escape", '"\\x41"', False, "string")
    case("string_short_unicode_escape", '"\\u12"', False, "string")
    case("string_unterminated", '"abc', False, "string")
    case("string_all_escapes", '"\\" \\\\ \\/ \\b \\f \\n \\r \\t"', True, "string")

    # The rules apply to the whole body or frame: depth counts from the outermost brace.
    def body_case(name, data_text, valid, rule, note=None):
        raw = ('{"channel":"events","event":"e","data":%s}' % data_text).encode("utf-8", "surrogatepass")
        got = strict_json(raw)
        assert (got is None) == valid and (valid or got == rule), (name, got)
        assert second_opinion(raw) == valid
        c = {"name": name, "context": "publish_body", "input_hex": raw.hex(), "input": raw.decode("utf-8"),
             "valid": valid, "rule": rule,
             "expected": {"status": 200} if valid else {"status": 400, "error": "invalid_body"}}
        if note:
            c["note"] = note
        cases.append(c)

    body_case("body_data_depth_63", "[" * 63 + "]" * 63, True, "depth", "the body object is level 1, so data may nest 63 deep")
    body_case("body_data_depth_64", "[" * 64 + "]" * 64, False, "depth", "data nested 64 deep makes the body 65 deep")
    body_case("body_data_duplicate_key", '{"id":1,"id":2}', False, "duplicate_key")
    body_case("body_data_lone_surrogate", '{"t":"\\uD800"}', False, "lone_surrogate")
    body_case("body_data_surrogate_pair", '{"t":"\\uD83D\\uDE00"}', True, "lone_surrogate")
    body_case("body_duplicate_channel", '1,"channel":"other"', False, "duplicate_key", "a second channel member")

    return {
        "description": "JSON strictness cases. Every JSON text relayd reads (HTTP bodies, WebSocket text frames, token headers and payloads, presence states, awareness states) follows one rule set: RFC 8259, UTF-8 only, no lone surrogate escapes, no duplicate member names, nesting depth at most 64. `input_hex` is authoritative; `input` is the same bytes as text when they are UTF-8. Cases without `context` are complete JSON texts; `context: publish_body` cases are complete POST /publish bodies with the expected HTTP answer.",
        "version": 1,
        "generated_by": GENERATED_BY + "; validity checked by two validators in gen.py (a strict parser, and Python's json module with duplicate, surrogate, constant and depth checks added)",
        "confirmed_by": "crosscheck.php (PHP json_decode with depth 64; it cannot see duplicate names, so duplicate_key cases are skipped there); probe_relayd.py sends every case to a live relayd as POST /publish data or body",
        "max_depth": MAX_DEPTH,
        "rules": {
            "utf8": "the text is UTF-8 (RFC 3629): no overlong forms, no encoded surrogates, nothing above U+10FFFF, no truncated sequences",
            "lone_surrogate": "a \\u escape in D800–DBFF must be followed by a \\u escape in DC00–DFFF; any other D800–DFFF escape is rejected",
            "duplicate_key": "member names of one object are distinct after unescaping",
            "depth": "at most 64 nested arrays/objects; the outermost counts as 1",
            "number": "RFC 8259 number grammar: -?(0|[1-9][0-9]*)(\\.[0-9]+)?([eE][+-]?[0-9]+)?",
            "trailing_comma": "no comma before ] or }",
            "structure": "exactly one value, surrounded by optional whitespace; no comments",
            "literal": "only true, false, null (lowercase)",
            "bom": "no byte order mark",
            "whitespace": "only space, tab, line feed and carriage return between tokens",
            "string": "double-quoted; U+0000–U+001F escaped; escapes are \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX",
        },
        "cases": cases,
    }


# ---------------------------------------------------------------- tokens

ED_KEY = Ed25519PrivateKey.from_private_bytes(ED25519_SEED)
ED_PUB = ED_KEY.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def jws(header: dict, claims, key):
    h = b64url(compact(header).encode())
    p = b64url((claims if isinstance(claims, (bytes, bytearray)) else compact(claims).encode()))
    signing_input = (h + "." + p).encode()
    if key[0] == "hs256":
        sig = hmac.new(key[1].encode() if isinstance(key[1], str) else key[1], signing_input, hashlib.sha256).digest()
    elif key[0] == "eddsa":
        sig = ED_KEY.sign(signing_input)
    else:
        sig = b""
    return h + "." + p + "." + b64url(sig)


def expand(prefix):
    return prefix if prefix.startswith("site:") else "site:%s:%s" % (SITE_ID, prefix)


def token_vectors():
    HS = {"alg": "HS256", "typ": "JWT"}
    ED = {"alg": "EdDSA", "typ": "JWT"}
    base = {
        "tenant_id": TENANT_ID, "site_id": SITE_ID, "user_id": "42",
        "allowed_channel_prefixes": ["site:%s:" % SITE_ID], "allowed_publish_prefixes": ["site:%s:" % SITE_ID],
        "v": 2, "iat": NOW - 10, "exp": NOW + 290,
    }

    def claims(**kw):
        c = dict(base)
        for k, v in kw.items():
            if v is None:
                c.pop(k, None)
            else:
                c[k] = v
        return c

    def grant(c, checks):
        sub = [expand(p) for p in c.get("allowed_channel_prefixes", ["site:%s:" % SITE_ID])]
        pub = [expand(p) for p in c.get("allowed_publish_prefixes", ["site:%s:" % SITE_ID])]
        out = {
            "site_id": SITE_ID, "user_id": str(c.get("user_id", c.get("sub", "0"))),
            "subscribe_prefixes": sub, "publish_prefixes": pub, "expires_at": c.get("exp"),
            "v": c.get("v", 1), "sse_framing": "unnamed" if c.get("v", 1) >= 2 else "named",
            "checks": [],
        }
        for ch in checks:
            f = ch if ch.startswith("site:") else full(ch)
            out["checks"].append({"channel": ch, "subscribe": any(f.startswith(p) for p in sub),
                                  "publish": any(f.startswith(p) for p in pub) and not f.startswith(full("wps:"))})
        return out

    def refused(error, reason="invalid token", code=4001, status=401, http_error="invalid_token"):
        return {"valid": False, "error": error, "close_code": code, "close_reason": reason,
                "yjs_close_code": 4003 if code == 4003 else code,
                "sse": {"status": status, "error": http_error}}

    cases = []

    def add(name, desc, token, keys, expected, c=None, header=None, now=NOW):
        case = {"name": name, "description": desc, "site_keys": keys, "now": now, "token": token}
        if header is not None:
            case["header"] = header
        if c is not None:
            case["claims"] = c
        case["expected"] = expected
        cases.append(case)

    checks = ["events", full("events"), "yjs:postType/post:1", "woo:orders", "wps:connections", "site:%s:events" % OTHER_SITE_ID]
    c = claims()
    add("hs256_valid", "a wordsocket-style token (Token::mint()): site-wide prefixes, v 2", jws(HS, c, ("hs256", JWT_SECRET)),
        ["HS256"], dict({"valid": True}, grant=grant(c, checks)), c, HS)
    c = claims(allowed_channel_prefixes=["site:%s:events" % SITE_ID, "yjs:", "woo:orders"], allowed_publish_prefixes=["yjs:"], user_id="7")
    add("hs256_strict_mode", "strict mode: explicit read prefixes (bare ones get the site prefix), publish only under yjs:",
        jws(HS, c, ("hs256", JWT_SECRET)), ["HS256"], dict({"valid": True}, grant=grant(c, checks)), c, HS)
    c = {"site_id": SITE_ID, "exp": NOW + 60}
    add("hs256_minimal", "only site_id and exp: both prefix lists default to site:{site_id}:, user_id to \"0\", v to 1 (named SSE events)",
        jws(HS, c, ("hs256", JWT_SECRET)), ["HS256"], dict({"valid": True}, grant=grant(c, checks[:2])), c, HS)
    c = claims(user_id=42)
    add("hs256_integer_user_id", "user_id as an integer is accepted and read as the string \"42\"",
        jws(HS, c, ("hs256", JWT_SECRET)), ["HS256"], dict({"valid": True}, grant=grant(c, [])), c, HS)
    c = claims()
    add("eddsa_valid", "EdDSA (Ed25519) token for a site that registered a public key", jws(ED, c, ("eddsa",)),
        ["EdDSA"], dict({"valid": True}, grant=grant(c, checks[:2])), c, ED)
    add("eddsa_site_with_both_keys", "a site holding both an HS256 secret and an Ed25519 key accepts either algorithm",
        jws(ED, c, ("eddsa",)), ["HS256", "EdDSA"], dict({"valid": True}, grant=grant(c, [])), c, ED)
    # time
    c = claims(iat=NOW - 300, exp=NOW - 4)
    add("expired_within_leeway", "exp 4 s ago: still inside the 5 s leeway", jws(HS, c, ("hs256", JWT_SECRET)), ["HS256"],
        dict({"valid": True}, grant=grant(c, [])), c, HS)
    c = claims(iat=NOW - 305, exp=NOW - 5)
    add("expired", "exp 5 s ago: expired (now >= exp + leeway)", jws(HS, c, ("hs256", JWT_SECRET)), ["HS256"],
        refused("expired", "token expired"), c, HS)
    c = claims(nbf=NOW + 5)
    add("nbf_within_leeway", "nbf 5 s ahead: accepted (now + leeway >= nbf)", jws(HS, c, ("hs256", JWT_SECRET)), ["HS256"],
        dict({"valid": True}, grant=grant(c, [])), c, HS)
    c = claims(nbf=NOW + 6)
    add("not_yet_valid", "nbf 6 s ahead: not yet valid", jws(HS, c, ("hs256", JWT_SECRET)), ["HS256"], refused("notYetValid"), c, HS)
    c = claims(iat=NOW + 6, exp=NOW + 306)
    add("issued_in_the_future", "iat 6 s ahead: refused", jws(HS, c, ("hs256", JWT_SECRET)), ["HS256"], refused("issuedInTheFuture"), c, HS)
    c = claims(exp=None)
    add("missing_exp", "no exp claim: refused (exp is required)", jws(HS, c, ("hs256", JWT_SECRET)), ["HS256"],
        refused("missingClaim(exp)"), c, HS)
    # algorithm pinning
    c = claims()
    add("hs256_to_eddsa_site", "a valid HS256 token presented to a site that has only an Ed25519 key",
        jws(HS, c, ("hs256", JWT_SECRET)), ["EdDSA"], refused("algorithmMismatch(HS256)"), c, HS)
    add("hs256_with_public_key_as_secret", "classic confusion: HS256 signed with the site's Ed25519 public key bytes as the HMAC secret",
        jws(HS, c, ("hs256", ED_PUB)), ["EdDSA"], refused("algorithmMismatch(HS256)"), c, HS)
    add("eddsa_to_hs256_site", "an EdDSA token presented to a site that has only an HS256 secret",
        jws(ED, c, ("eddsa",)), ["HS256"], refused("algorithmMismatch(EdDSA)"), c, ED)
    NONE = {"alg": "none", "typ": "JWT"}
    add("alg_none", "alg none with an empty signature", jws(NONE, c, ("none",)), ["HS256"], refused("algorithmMismatch(none)"), c, NONE)
    LOWER = {"alg": "hs256", "typ": "JWT"}
    add("alg_lowercase", "alg spelled hs256: algorithm names are case-sensitive", jws(LOWER, c, ("hs256", JWT_SECRET)), ["HS256"],
        refused("algorithmMismatch(hs256)"), c, LOWER)
    CRIT = {"alg": "HS256", "typ": "JWT", "crit": ["exp"]}
    add("crit_header", "a crit header is refused", jws(CRIT, c, ("hs256", JWT_SECRET)), ["HS256"], refused("malformed"), c, CRIT)
    # signatures and structure
    add("wrong_secret", "HS256 signed with another secret", jws(HS, c, ("hs256", WRONG_SECRET)), ["HS256"], refused("badSignature"), c, HS)
    good = jws(HS, c, ("hs256", JWT_SECRET))
    forged_claims = claims(user_id="1")
    h, _, s = good.split(".")
    forged = h + "." + b64url(compact(forged_claims).encode()) + "." + s
    add("payload_changed", "user_id changed after signing (signature of the hs256_valid token kept)", forged, ["HS256"],
        refused("badSignature"), forged_claims, HS)
    ed_good = jws(ED, c, ("eddsa",))
    h2, p2, s2 = ed_good.split(".")
    sig = bytearray(base64.urlsafe_b64decode(s2 + "=="))
    sig[0] ^= 1
    add("eddsa_bad_signature", "EdDSA signature with its first byte flipped", h2 + "." + p2 + "." + b64url(bytes(sig)), ["EdDSA"],
        refused("badSignature"), c, ED)
    add("two_segments", "not a compact JWS", good.rsplit(".", 1)[0], ["HS256"], refused("malformed"))
    c2 = claims(site_id=None)
    add("missing_site_id", "no site_id: the relay cannot pick a site key", jws(HS, c2, ("hs256", JWT_SECRET)), ["HS256"],
        refused("malformed(no site_id)"), c2, HS)
    c3 = claims(site_id=OTHER_SITE_ID)
    add("unknown_site", "site_id of a site the relay does not know (or archived)", jws(HS, c3, ("hs256", JWT_SECRET)), ["HS256"],
        refused("siteNotFound", "site not found", 4003, 403, "site_not_found"), c3, HS)
    big = claims(pad="x" * 6200)
    tok = jws(HS, big, ("hs256", JWT_SECRET))
    assert len(tok) > 8192
    add("oversize", "%d bytes: over the 8192-byte cap, refused before anything is decoded" % len(tok), tok, ["HS256"], refused("tooLarge"))
    c4 = claims(exp="%d" % (NOW + 290))
    add("exp_as_string", "exp must be an integer", jws(HS, c4, ("hs256", JWT_SECRET)), ["HS256"], refused("malformed"), c4, HS)
    dup = ('{"site_id":"%s","user_id":"42","exp":%d,"exp":%d}' % (SITE_ID, NOW + 290, NOW + 99999)).encode()
    add("duplicate_claim", "a payload with exp twice breaks the JSON rules (duplicate member names)",
        jws(HS, dup, ("hs256", JWT_SECRET)), ["HS256"], refused("malformed"), None, HS)
    # The JSON rules hold inside tokens too: the payload object is level 1.
    deep = ('{"site_id":"%s","user_id":"42","exp":%d,"x":%s}' % (SITE_ID, NOW + 290, "[" * 63 + "]" * 63)).encode()
    c5 = json.loads(deep)
    add("payload_depth_64", "a claim nested so that the payload is 64 deep: valid by the JSON rules (unknown claims are ignored)",
        jws(HS, deep, ("hs256", JWT_SECRET)), ["HS256"], dict({"valid": True}, grant=grant(c5, [])), c5, HS)
    deeper = ('{"site_id":"%s","user_id":"42","exp":%d,"x":%s}' % (SITE_ID, NOW + 290, "[" * 64 + "]" * 64)).encode()
    add("payload_depth_65", "the payload is 65 deep: breaks the JSON rules", jws(HS, deeper, ("hs256", JWT_SECRET)), ["HS256"],
        refused("malformed"), None, HS)
    sur = ('{"site_id":"%s","user_id":"\\uD800","exp":%d}' % (SITE_ID, NOW + 290)).encode()
    add("payload_lone_surrogate", "user_id holds the escape of a lone surrogate: breaks the JSON rules", jws(HS, sur, ("hs256", JWT_SECRET)),
        ["HS256"], refused("malformed"), None, HS)
    for case in cases:
        assert len(case["token"]) <= 8192 or case["name"] == "oversize"

    return {
        "description": "Connection tokens (compact JWS). `site_keys` lists the verification keys the site holds; the key pins the algorithm. Verify at `now` (Unix seconds) with leeway 5 s and the 8192-byte cap. `expected.grant` is what a valid token allows (prefixes expanded to full names; `checks` applies them). Refusals give `error` (relayd's JWTError name), the close code and reason on /ws and /yjs, and the SSE HTTP answer.",
        "version": 1,
        "generated_by": GENERATED_BY,
        "confirmed_by": "crosscheck.php (hash_hmac, sodium_crypto_sign_*) re-mints every signed token byte for byte and applies the rules; crosscheck_relayctl.py runs `relayctl token verify`",
        "now": NOW,
        "leeway_seconds": 5,
        "max_token_bytes": 8192,
        "site": {
            "site_key": SITE_KEY, "site_id": SITE_ID, "tenant_id": TENANT_ID,
            "jwt_secret": JWT_SECRET,
            "ed25519_seed_hex": ED25519_SEED.hex(), "ed25519_seed_b64url": b64url(ED25519_SEED),
            "ed25519_public_key_hex": ED_PUB.hex(), "ed25519_public_key_b64url": b64url(ED_PUB),
        },
        "cases": cases,
    }


# ---------------------------------------------------------------- publish signatures

def canonical_query(q):
    if not q:
        return ""
    from urllib.parse import unquote_to_bytes, quote_from_bytes
    pairs = []
    for part in q.split("&"):
        if part == "":
            continue
        name, _, value = part.partition("=")
        enc = lambda s: quote_from_bytes(unquote_to_bytes(s), safe="-_.~")
        pairs.append((enc(name).encode(), enc(value).encode()))
    pairs.sort()
    return "&".join(n.decode() + "=" + v.decode() for n, v in pairs)


def v1_sig(body: bytes, ts, secret):
    return hmac.new(secret.encode(), body + b"." + str(ts).encode(), hashlib.sha256).hexdigest()


def v2_string(method, path, query, site_key, kid, ts, nonce, body: bytes):
    return "\n".join(["RELAY-HMAC-SHA256-V2", method.upper(), path, canonical_query(query), site_key, kid, str(ts), nonce,
                      hashlib.sha256(body).hexdigest()])


def v2_sig(s, secret):
    return "v2=" + hmac.new(secret.encode(), s.encode(), hashlib.sha256).hexdigest()


def signature_vectors():
    body = b'{"channel":"events","event":"post.updated","data":{"post_id":5}}'
    cases = []

    def v1(name, desc, body, ts, sign=None, secret=PUBLISH_SECRET, method="POST", path="/publish", key=SITE_KEY,
           expected=None, send_body=None, headers_override=None):
        ts_s = str(ts) if ts is not None else None
        sig = sign if sign is not None else v1_sig(body, ts, secret)
        headers = {"X-WP-Signal-Key": key}
        if ts_s is not None:
            headers["X-WP-Signal-Ts"] = ts_s
        headers["X-WP-Signal-Sign"] = sig
        if headers_override:
            headers.update(headers_override)
        sent = body if send_body is None else send_body
        c = {"name": name, "scheme": "v1", "description": desc,
             "request": {"method": method, "path": path, "query": "", "headers": headers, "body": sent.decode()},
             "signed_secret": secret, "signed_string": (body + b"." + str(ts).encode()).decode() if ts is not None else None,
             "expected": expected or {"valid": True}}
        cases.append(c)

    def bad(status, error):
        return {"valid": False, "status": status, "error": error}

    v1("v1_valid", "wordsocket Publisher::sign(): HMAC-SHA256(secret string bytes, body + \".\" + ts_ms), lowercase hex", body, NOW_MS - 1500)
    v1("v1_stats_empty_body", "GET /site/stats is signed over the empty body: the signed string is \".\" + ts_ms", b"", NOW_MS - 1000,
       method="GET", path="/site/stats")
    v1("v1_window_edge_past", "exactly 60 000 ms old: accepted", body, NOW_MS - 60000)
    v1("v1_window_edge_future", "exactly 60 000 ms ahead: accepted", body, NOW_MS + 60000)
    v1("v1_stale", "60 001 ms old", body, NOW_MS - 60001, expected=bad(401, "stale_timestamp"))
    v1("v1_future", "60 001 ms ahead", body, NOW_MS + 60001, expected=bad(401, "future_timestamp"))
    v1("v1_wrong_secret", "signed with another secret", body, NOW_MS, secret=WRONG_SECRET, expected=bad(401, "invalid_signature"))
    v1("v1_body_changed", "body changed after signing (post_id 5 → 6)", body, NOW_MS,
       send_body=body.replace(b":5}", b":6}"), expected=bad(401, "invalid_signature"))
    v1("v1_uppercase_hex", "the same signature in uppercase hex: senders send lowercase, relayd accepts either case",
       body, NOW_MS - 1500, sign=v1_sig(body, NOW_MS - 1500, PUBLISH_SECRET).upper())
    v1("v1_malformed_hex", "64 characters but not hex: invalid_signature, not malformed", body, NOW_MS,
       sign="zz" + v1_sig(body, NOW_MS, PUBLISH_SECRET)[2:], expected=bad(401, "invalid_signature"))
    v1("v1_short_signature", "63 hex characters", body, NOW_MS, sign=v1_sig(body, NOW_MS, PUBLISH_SECRET)[:63],
       expected=bad(401, "invalid_signature"))
    v1("v1_dummy_probe", "the plugin's site-existence probe: body {} signed \"dummy\", whatever the timestamp: the site exists",
       b"{}", NOW_MS - 3600000, sign="dummy", expected=bad(401, "invalid_signature"))
    v1("v1_dummy_probe_unknown_site", "the same probe with an unknown site key: the site is gone", b"{}", NOW_MS - 3600000,
       sign="dummy", key=OTHER_SITE_KEY, expected=bad(401, "unknown_site_key"))
    v1("v1_missing_timestamp", "no X-WP-Signal-Ts", body, None, sign=v1_sig(body, NOW_MS, PUBLISH_SECRET),
       expected=bad(400, "malformed_request"))
    v1("v1_timestamp_seconds_fraction", "a timestamp that is not an integer of milliseconds", body, NOW_MS,
       headers_override={"X-WP-Signal-Ts": "%d.5" % NOW}, expected=bad(400, "malformed_request"))

    def v2(name, desc, ts, nonce, method="POST", path="/publish", query="", body=body, secret=PUBLISH_SECRET, kid=PUBLISH_KEY_ID,
           expected=None, sign_override=None, send=None):
        s = v2_string(method, path, query, SITE_KEY, kid, ts, nonce, body)
        sig = sign_override if sign_override is not None else v2_sig(s, secret)
        req = {"method": method, "path": path, "query": query,
               "headers": {"X-Relay-Key": SITE_KEY, "X-Relay-Key-Id": kid, "X-Relay-Timestamp": str(ts),
                           "X-Relay-Nonce": nonce, "X-Relay-Signature": sig},
               "body": body.decode()}
        if send:
            req.update(send)
        cases.append({"name": name, "scheme": "v2", "description": desc, "request": req, "signed_secret": secret,
                      "canonical_query": canonical_query(query), "body_sha256": hashlib.sha256(body).hexdigest(),
                      "signed_string": s, "expected": expected or {"valid": True}})

    v2("v2_valid", "Relay v2: canonical request over method, path, query, site key, key id, ts, nonce and body hash",
       NOW_MS - 2000, "bm9uY2UtdjItdmFsaWQtMDE")
    v2("v2_query", "a query string: decoded, re-encoded as rawurlencode (RFC 3986), sorted by name then value",
       NOW_MS - 1000, "bm9uY2UtdjItcXVlcnktMDI", path="/publish/batch",
       query="b=2&a=%7e&a=1&c=x+y&d=%E2%98%95&e&f=a%2Fb", body=b'{"publications":[]}')
    v2("v2_stats", "GET /site/stats under v2: empty body (its SHA-256 is e3b0…b855)", NOW_MS, "bm9uY2UtdjItc3RhdHMtMDM",
       method="GET", path="/site/stats", body=b"")
    v2("v2_replayed", "v2_valid sent again (same nonce, inside the window): refused after the signature check",
       NOW_MS - 2000, "bm9uY2UtdjItdmFsaWQtMDE", expected=bad(401, "replayed_request"))
    v2("v2_stale", "60 001 ms old", NOW_MS - 60001, "bm9uY2UtdjItc3RhbGUtMDQ", expected=bad(401, "stale_timestamp"))
    v2("v2_future", "60 001 ms ahead", NOW_MS + 60001, "bm9uY2UtdjItZnV0dXJlLTA1", expected=bad(401, "future_timestamp"))
    v2("v2_wrong_secret", "signed with another secret", NOW_MS, "bm9uY2UtdjItd3JvbmctMDY", secret=WRONG_SECRET,
       expected=bad(401, "invalid_signature"))
    v2("v2_body_changed", "body changed after signing", NOW_MS, "bm9uY2UtdjItYm9keS0wNw",
       send={"body": body.replace(b":5}", b":6}").decode()}, expected=bad(401, "invalid_signature"))
    v2("v2_path_changed", "signed for /publish, sent to /publish/batch", NOW_MS, "bm9uY2Utdji1wYXRoLTA4",
       send={"path": "/publish/batch"}, expected=bad(401, "invalid_signature"))
    v2("v2_method_lowercase", "the method is uppercased before signing: a signer that wrote \"post\" signs the same string",
       NOW_MS, "bm9uY2Utdjit1ldGhvZC0wOQ", method="post", send={"method": "POST"})
    v2("v2_malformed_hex", "v2= followed by 64 non-hex characters", NOW_MS, "bm9uY2Utdjit1hbGZvcm0tMTA",
       sign_override="v2=" + "g" * 64, expected=bad(401, "invalid_signature"))
    v2("v2_missing_prefix", "signature without the v2= prefix", NOW_MS, "bm9uY2Utdjit1wcmVmaXgtMTE",
       sign_override=v2_sig(v2_string("POST", "/publish", "", SITE_KEY, PUBLISH_KEY_ID, NOW_MS, "bm9uY2Utdjit1wcmVmaXgtMTE", body),
                            PUBLISH_SECRET)[3:], expected=bad(401, "invalid_signature"))
    v2("v2_unknown_key_id", "a key id the site does not hold", NOW_MS, "bm9uY2Utdjit1raWQtMTI", kid="k9",
       expected=bad(401, "unknown_site_key"))
    v2("v2_short_nonce", "a 15-character nonce (16–128 printable ASCII required)", NOW_MS, "c2hvcnQtbm9uY2U",
       expected=bad(400, "malformed_request"))
    for c in cases:
        if c["scheme"] == "v2" and c["name"] == "v2_short_nonce":
            assert len(c["request"]["headers"]["X-Relay-Nonce"]) == 15

    return {
        "description": "Publish request signatures. Evaluate the cases in order against one verifier (one replay cache) for the site below at `now_ms`, window ±60 000 ms. The request is what arrives at the relay; `signed_string` is what the signer HMACed (v1: body.ts; v2: the canonical request). `expected.valid` false gives the HTTP status and `error`.",
        "version": 1,
        "generated_by": GENERATED_BY,
        "confirmed_by": "crosscheck.php (hash_hmac, rawurlencode/rawurldecode) recomputes every signature and verdict; crosscheck_relayctl.py compares `relayctl sign` for v1 and v2; probe_relayd.py replays every case (timestamps shifted to the real clock) against a live relayd",
        "now_ms": NOW_MS,
        "window_ms": 60000,
        "site": {"site_key": SITE_KEY, "publish_secret": PUBLISH_SECRET, "publish_key_id": PUBLISH_KEY_ID},
        "cases": cases,
    }


# ---------------------------------------------------------------- envelopes

def aad_v2(alg, kid, channel):
    a, k, c = alg.encode(), kid.encode(), channel.encode()
    return b"relay-envelope-v2" + bytes([len(a)]) + a + bytes([len(k)]) + k + struct.pack(">H", len(c)) + c


def pick_nonce(label, size, seal):
    """The first nonce sha256(label + i)[:size] whose base64 output holds a '/' (so PHP's \\/ escaping shows)."""
    i = 0
    while True:
        n = hashlib.sha256(("%s-%d" % (label, i)).encode()).digest()[:size]
        p = b64(n + seal(n))
        if "/" in p:
            return n
        i += 1


def envelope_vectors():
    v1_key = hkdf(ENCRYPTION_SEED.encode(), SITE_KEY.encode(), b"wpsignal-v1")
    v2_key = hkdf(ENCRYPTION_SEED.encode(), SITE_KEY.encode(), ("relay-envelope-v2:" + V2_KID).encode())
    event, data = "post.updated", {"post_id": 5, "post_title": "Hello / world", "permalink": "https://example.com/?p=5"}
    plaintext = php_json_encode({"event": event, "data": data})
    pt = plaintext.encode()

    cases = []
    # v1
    iv = pick_nonce("relay-vector-v1-iv", 12, lambda n: AESGCM(v1_key).encrypt(n, pt, None))
    raw = iv + AESGCM(v1_key).encrypt(iv, pt, None)
    env1 = {"v": 1, "p": b64(raw)}
    body1 = php_json_encode({"channel": "events", "event": "encrypted", "data": env1})
    ts = NOW_MS - 500
    cases.append({
        "name": "v1_aes256gcm", "version": 1, "key": "v1", "nonce_hex": iv.hex(), "plaintext": plaintext, "aad_hex": "",
        "ciphertext_hex": raw[12:-16].hex(), "tag_hex": raw[-16:].hex(), "envelope": env1,
        "published": {"channel": "events", "body": body1,
                      "headers_v1": {"X-WP-Signal-Key": SITE_KEY, "X-WP-Signal-Ts": str(ts), "X-WP-Signal-Sign": v1_sig(body1.encode(), ts, PUBLISH_SECRET)},
                      "delivered_data": php_json_encode(env1)},
        "open": {"channel": full("events"), "expected": "ok"},
    })
    # v2 A256GCM and XC20P, bound to the full channel name
    ch = full("events")
    for alg, size in (("A256GCM", 12), ("XC20P", 24)):
        aad = aad_v2(alg, V2_KID, ch)
        if alg == "A256GCM":
            seal = lambda n: AESGCM(v2_key).encrypt(n, pt, aad)
        else:
            seal = lambda n: xc20p_seal(v2_key, n, pt, aad)
        n = pick_nonce("relay-vector-v2-" + alg, size, seal)
        raw = n + seal(n)
        env = {"v": 2, "alg": alg, "kid": V2_KID, "p": b64(raw)}
        body = php_json_encode({"channel": "events", "event": "encrypted", "data": env})
        cases.append({
            "name": "v2_" + alg.lower(), "version": 2, "key": "v2", "nonce_hex": n.hex(), "plaintext": plaintext,
            "aad_hex": aad.hex(), "ciphertext_hex": raw[size:-16].hex(), "tag_hex": raw[-16:].hex(), "envelope": env,
            "published": {"channel": "events", "body": body, "delivered_data": php_json_encode(env)},
            "open": {"channel": ch, "expected": "ok"},
        })

    def tamper(src, name, desc, envelope=None, channel=None, key=None):
        c = next(x for x in cases if x["name"] == src)
        cases.append({"name": name, "description": desc, "version": c["version"], "key": key or c["key"],
                      "envelope": envelope or c["envelope"], "open": {"channel": channel or c["open"]["channel"], "expected": "fail"}})

    def flip_tag(env):
        raw = bytearray(base64.b64decode(env["p"]))
        raw[-1] ^= 0x01
        return dict(env, p=b64(bytes(raw)))

    g = next(x for x in cases if x["name"] == "v2_a256gcm")["envelope"]
    x = next(x for x in cases if x["name"] == "v2_xc20p")["envelope"]
    tamper("v1_aes256gcm", "v1_tag_flipped", "last tag byte XOR 1", envelope=flip_tag(env1))
    tamper("v1_aes256gcm", "v1_wrong_key", "opened with the v2 key", key="v2")
    tamper("v2_a256gcm", "v2_moved_channel", "an A256GCM envelope delivered on another channel of the site", channel=full("other"))
    tamper("v2_a256gcm", "v2_moved_site", "the same channel name on another site", channel="site:%s:events" % OTHER_SITE_ID)
    tamper("v2_a256gcm", "v2_kid_relabelled", "kid changed to 2026-12 (opened with the same key)", envelope=dict(g, kid="2026-12"))
    tamper("v2_a256gcm", "v2_alg_relabelled", "an A256GCM envelope relabelled XC20P", envelope=dict(g, alg="XC20P"))
    tamper("v2_xc20p", "v2_xc20p_alg_relabelled", "an XC20P envelope relabelled A256GCM", envelope=dict(x, alg="A256GCM"))
    tamper("v2_a256gcm", "v2_tag_flipped", "last tag byte XOR 1", envelope=flip_tag(g))
    tamper("v2_xc20p", "v2_xc20p_tag_flipped", "last tag byte XOR 1", envelope=flip_tag(x))
    tamper("v2_xc20p", "v2_xc20p_moved_channel", "an XC20P envelope delivered on another channel", channel=full("other"))

    # self-check: the negatives really fail, the positives open
    keys = {"v1": v1_key, "v2": v2_key}
    for c in cases:
        env, k = c["envelope"], keys[c["key"]]
        raw = base64.b64decode(env["p"])
        try:
            if env["v"] == 1:
                out = AESGCM(k).decrypt(raw[:12], raw[12:], None)
            elif env["alg"] == "A256GCM":
                out = AESGCM(k).decrypt(raw[:12], raw[12:], aad_v2(env["alg"], env["kid"], c["open"]["channel"]))
            else:
                out = xc20p_open(k, raw[:24], raw[24:], aad_v2(env["alg"], env["kid"], c["open"]["channel"]))
            ok = out == pt
        except Exception:
            ok = False
        assert ok == (c["open"]["expected"] == "ok"), c["name"]

    return {
        "description": "Payload envelopes. Keys: HKDF-SHA256(IKM = seed bytes, salt = site_key ASCII, info, L = 32). v1: AES-256-GCM, no AAD, p = base64(iv12 ‖ ct ‖ tag16). v2: A256GCM (12-byte nonce) or XC20P (24-byte nonce), AAD = \"relay-envelope-v2\" ‖ u8 len(alg) ‖ alg ‖ u8 len(kid) ‖ kid ‖ u16be len(channel) ‖ channel (the full site:{site_id}:{name}). `published.body` is the POST /publish body as the plugin's PHP json_encode writes it (\"/\" escaped), `delivered_data` the data member subscribers receive, byte for byte. `open.expected` is ok or fail for the key and channel given.",
        "version": 1,
        "generated_by": GENERATED_BY + "; XChaCha20 = HChaCha20 (gen.py, checked against draft-irtf-cfrg-xchacha-03) + cryptography's ChaCha20-Poly1305",
        "confirmed_by": "crosscheck.php (hash_hkdf, openssl_encrypt, sodium_crypto_aead_xchacha20poly1305_ietf_*) re-seals with the same nonces byte for byte and opens every case; crosscheck_relayctl.py runs `relayctl derive-key` and `relayctl open`",
        "seed": ENCRYPTION_SEED,
        "site_key": SITE_KEY,
        "site_id": SITE_ID,
        "keys": {
            "v1": {"info": "wpsignal-v1", "key_b64": b64(v1_key), "key_hex": v1_key.hex()},
            "v2": {"kid": V2_KID, "info": "relay-envelope-v2:" + V2_KID, "key_b64": b64(v2_key), "key_hex": v2_key.hex()},
        },
        "cases": cases,
    }


# ---------------------------------------------------------------- frames

def frame_vectors():
    client = []

    def text(name, frame, expect, note=None, token="default"):
        raw = frame.encode("utf-8", "surrogatepass") if isinstance(frame, str) else frame
        c = {"name": name, "token": token}
        try:
            c["text"] = raw.decode("utf-8")
        except UnicodeDecodeError:
            c["text_hex"] = raw.hex()
        c["expect"] = expect
        if note:
            c["note"] = note
        client.append(c)

    def binary(name, raw, expect, note=None, token="default"):
        c = {"name": name, "token": token, "binary_hex": raw.hex(), "expect": expect}
        if note:
            c["note"] = note
        client.append(c)

    def err(code, channel=None):
        e = {"kind": "error", "code": code}
        if channel is not None:
            e["channel"] = channel
        return e

    def close(code, reason=None):
        c = {"kind": "close", "code": code}
        if reason:
            c["reason"] = reason
        return c

    def reply(*types):
        return {"kind": "reply", "types": list(types)}

    none = {"kind": "none"}
    text("subscribe_bare", '{"type":"subscribe","channels":["events"]}', reply("subscribed"))
    text("subscribe_full", '{"type":"subscribe","channels":["%s"]}' % full("events"), reply("subscribed"),
         "the same channel as \"events\"")
    text("subscribe_two", '{"type":"subscribe","channels":["events","shop"]}', reply("subscribed", "subscribed"),
         "one subscribed frame per channel")
    text("subscribe_positions", '{"type":"subscribe","channels":["events"],"positions":{"events":{"offset":3,"epoch":"e1"}}}',
         reply("subscribed"), "subscribed carries recovered true/false; replayed messages follow it")
    text("subscribe_other_site", '{"type":"subscribe","channels":["site:%s:events"]}' % OTHER_SITE_ID,
         err("forbidden", "site:%s:events" % OTHER_SITE_ID))
    text("subscribe_outside_prefixes", '{"type":"subscribe","channels":["woo:orders"]}', err("forbidden", "woo:orders"),
         token="strict")
    text("subscribe_grant_is_not_a_string_prefix", '{"type":"subscribe","channels":["events2"]}', err("forbidden", "events2"),
         "strict token: the grant site:{site_id}:events names a channel, which does not reach events2", token="strict")
    text("subscribe_under_a_channel_grant", '{"type":"subscribe","channels":["events:eu"]}', reply("subscribed"),
         "strict token: a channel grant reaches the channels under it (events:eu)", token="strict")
    text("subscribe_empty_name", '{"type":"subscribe","channels":[""]}', err("invalid_channel", ""))
    text("subscribe_control_char", '{"type":"subscribe","channels":["a\\u0001b"]}', err("invalid_channel", "a\u0001b"))
    text("subscribe_256_bytes", '{"type":"subscribe","channels":["%s"]}' % ("c" * 256), err("invalid_channel", "c" * 256),
         "bare names are 1–255 UTF-8 bytes")
    text("subscribe_lone_surrogate", '{"type":"subscribe","channels":["\\uD800"]}', close(1008), "JSON rules: lone surrogate")
    text("subscribe_wps", '{"type":"subscribe","channels":["wps:connections"]}', reply("subscribed"), "wps: is subscribable")
    text("unsubscribe", '{"type":"unsubscribe","channels":["events"]}', reply("unsubscribed"))
    text("publish", '{"type":"message","channel":"events","event":"chat","data":{"text":"hi"}}', {"kind": "delivered"},
         "delivered to subscribers (the sender too if subscribed) with offset and epoch")
    text("publish_idempotent", '{"type":"message","channel":"events","event":"chat","data":1,"idempotency_key":"k-1"}',
         {"kind": "delivered"}, "a second publish with the same key on the channel within 300 s is not delivered")
    text("publish_forbidden", '{"type":"message","channel":"events","event":"chat","data":{}}', err("forbidden", "events"),
         "strict token: publish only under yjs:", token="strict")
    text("publish_reserved", '{"type":"message","channel":"wps:connections","event":"x","data":{}}',
         err("reserved_channel", "wps:connections"))
    text("publish_empty_event", '{"type":"message","channel":"events","event":"","data":{}}', err("invalid_event", "events"))
    text("publish_long_idempotency_key", '{"type":"message","channel":"events","event":"e","data":{},"idempotency_key":"%s"}' % ("k" * 129),
         err("invalid_idempotency_key", "events"), "at most 128 bytes")
    text("publish_missing_data", '{"type":"message","channel":"events","event":"e"}', close(1008))
    text("presence_enter", '{"type":"presence","channel":"room","state":{"name":"Ada"}}', {"kind": "delivered"},
         "subscribers of room get wps.presence join")
    text("presence_leave", '{"type":"presence","channel":"room","state":null}', none,
         "not a member: nothing happens (after an enter, subscribers get wps.presence leave)")
    text("presence_reserved", '{"type":"presence","channel":"wps:connections","state":{}}', err("forbidden", "wps:connections"))
    text("presence_too_large", '{"type":"presence","channel":"room","state":{"s":"%s"}}' % ("x" * 2048),
         err("state_too_large", "room"), "state over 2048 bytes")
    hs_valid = next(c for c in token_vectors()["cases"] if c["name"] == "hs256_valid")["token"]
    text("auth_valid", '{"type":"auth","token":"%s"}' % hs_valid, reply("auth_ok"),
         "tokens.json hs256_valid: valid at `now` (set the clock, or mint an equivalent token)")
    text("auth_invalid", '{"type":"auth","token":"not.a.token"}', {"kind": "error_then_close", "code": "unauthorized", "close": 4001,
                                                                   "reason": "invalid token"})
    text("pong", '{"type":"pong"}', none)
    text("ping", '{"type":"ping"}', none, "accepted and ignored (liveness only)")
    text("unknown_fields_ignored", '{"type":"pong","x":[1,{"y":null}]}', none, "unknown members are ignored (but must be valid JSON)")
    text("not_json", "hello", close(1008))
    text("unknown_type", '{"type":"hello"}', close(1008))
    text("missing_type", '{"channels":["events"]}', close(1008))
    text("not_an_object", '["subscribe"]', close(1008))
    text("trailing_garbage", '{"type":"pong"}x', close(1008))
    text("duplicate_type", '{"type":"pong","type":"subscribe","channels":["events"]}', close(1008), "JSON rules: duplicate member names")
    text("duplicate_in_data", '{"type":"message","channel":"events","event":"e","data":{"a":1,"a":2}}', close(1008),
         "JSON rules apply inside data too")
    text("data_depth_64", '{"type":"message","channel":"events","event":"e","data":%s}' % ("[" * 64 + "]" * 64), close(1008),
         "the frame is 65 deep")
    text("data_depth_63", '{"type":"message","channel":"events","event":"e","data":%s}' % ("[" * 63 + "]" * 63), {"kind": "delivered"},
         "the frame is 64 deep")
    text("invalid_utf8", b'{"type":"subscribe","channels":["\xc0\xaf"]}', close(1007), "a text frame that is not UTF-8")

    def bframe(ch: bytes, payload: bytes):
        return struct.pack(">H", len(ch)) + ch + payload

    binary("binary_publish", bframe(b"yjs:postType/post:1", bytes.fromhex("0401020304")), {"kind": "delivered"},
           "fanned out unchanged (same bytes) to every subscriber, the sender included")
    binary("binary_empty_payload", bframe(b"events", b""), {"kind": "delivered"}, "an empty payload is allowed")
    binary("binary_forbidden", bframe(b"events", b"\x01"), err("forbidden", "events"), token="strict")
    binary("binary_zero_length_channel", bframe(b"", b"\x01"), close(1008))
    binary("binary_one_byte", b"\x00", close(1008))
    binary("binary_length_past_end", b"\x00\x10events", close(1008), "channel length 16, 6 bytes follow")
    binary("binary_channel_not_utf8", bframe(b"\xc0\xaf", b"\x01"), close(1008))
    binary("binary_reserved", bframe(b"wps:connections", b"\x01"), err("reserved_channel", "wps:connections"))

    relay = [
        {"name": "message", "text": '{"type":"message","channel":"events","event":"post.updated","data":{"post_id":5},"offset":7,"epoch":"k2x9"}',
         "fields": {"channel": "as the publisher spelled it (bare or full)", "event": "event name", "data": "byte for byte as published",
                    "offset": "position in the channel's stream (1, 2, 3, … per epoch)", "epoch": "id of the channel's stream; changes when history is lost"}},
        {"name": "message_encrypted", "text": '{"type":"message","channel":"events","event":"encrypted","data":{"v":1,"p":"q83vEjRWeJ=="},"offset":8,"epoch":"k2x9"}',
         "fields": {"data": "an envelope (envelopes.json); the inner event name is inside the ciphertext"}},
        {"name": "subscribed", "text": '{"type":"subscribed","channels":["events"],"offset":7,"epoch":"k2x9"}',
         "fields": {"channels": "one channel, as the subscriber spelled it", "offset": "the channel's current offset", "epoch": "current epoch"}},
        {"name": "subscribed_recovered", "text": '{"type":"subscribed","channels":["events"],"offset":7,"epoch":"k2x9","recovered":true}',
         "fields": {"recovered": "present when the subscribe carried positions: true = the missed messages follow; false = nothing replayed, reload state"}},
        {"name": "unsubscribed", "text": '{"type":"unsubscribed","channels":["events"]}', "fields": {}},
        {"name": "auth_ok", "text": '{"type":"auth_ok","exp":%d}' % (NOW + 300), "fields": {"exp": "the new token's exp (Unix seconds)"}},
        {"name": "error", "text": '{"type":"error","code":"forbidden","message":"channel outside the token\'s prefixes","channel":"woo:orders"}',
         "fields": {"code": "machine-readable code", "message": "human text", "channel": "the channel concerned, when there is one"}},
        {"name": "error_unauthorized", "text": '{"type":"error","code":"unauthorized","message":"token refused"}',
         "fields": {"code": "only for a refused auth frame; followed by close 4001"}},
        {"name": "ping", "text": '{"type":"ping"}', "fields": {}},
        {"name": "presence_join", "text": '{"type":"message","channel":"room","event":"wps.presence","data":{"action":"join","id":"n1-17","state":{"name":"Ada"}}}',
         "fields": {"id": "connection-scoped member id", "state": "the member's state JSON"}},
        {"name": "presence_leave", "text": '{"type":"message","channel":"room","event":"wps.presence","data":{"action":"leave","id":"n1-17"}}', "fields": {}},
        {"name": "presence_sync", "text": '{"type":"message","channel":"room","event":"wps.presence","data":{"action":"sync","members":[{"id":"n1-17","state":{"name":"Ada"}}]}}',
         "fields": {"members": "every member, sent on subscribe when the channel has members"}},
        {"name": "connections", "text": '{"type":"message","channel":"%s","event":"wps.connections","data":{"active_connections":3,"max_connections":500},"offset":12,"epoch":"p0q1"}' % full("wps:connections"),
         "fields": {"data": "the site's connection count, on change (coalesced, at most one per second)"}},
        {"name": "binary", "binary_hex": bframe(b"yjs:postType/post:1", bytes.fromhex("0401020304")).hex(),
         "fields": {"0..1": "u16 BE channel length N", "2..N+1": "channel (UTF-8, as the publisher spelled it)", "rest": "payload"}},
    ]
    for r in relay:
        if "text" in r:
            assert strict_json(r["text"].encode()) is None, r["name"]
    return {
        "description": "WebSocket frames on /ws. client_to_relay: a frame and what relayd does with it on an open connection whose token is `default` (both prefix lists site:{site_id}:) or `strict` (subscribe site:{site_id}:events and site:{site_id}:yjs:, publish site:{site_id}:yjs:). expect.kind: reply (control frames of `types`), delivered (a publication/presence event reaches subscribers), error (an error frame with `code`, the connection stays open), error_then_close, close (relayd closes with `code`), none. relay_to_client: example frames with the meaning of their fields.",
        "version": 1,
        "generated_by": GENERATED_BY,
        "confirmed_by": "probe_relayd.py sends every client_to_relay case (except auth_valid, which needs a fresh token) to a live relayd",
        "now": NOW,
        "site_id": SITE_ID,
        "other_site_id": OTHER_SITE_ID,
        "tokens": {
            "default": {"allowed_channel_prefixes": ["site:%s:" % SITE_ID], "allowed_publish_prefixes": ["site:%s:" % SITE_ID]},
            "strict": {"allowed_channel_prefixes": [full("events"), full("yjs:")], "allowed_publish_prefixes": [full("yjs:")]},
        },
        "client_to_relay": client,
        "relay_to_client": relay,
    }


# ---------------------------------------------------------------- y-protocols

def yprotocol_vectors():
    env = dict(os.environ, NODE_PATH=os.environ.get("NODE_PATH", "/usr/share/nodejs"))
    out = subprocess.run(["node", os.path.join(HERE, "yprotocols.js")], check=True, capture_output=True, env=env).stdout
    d = json.loads(out)
    return {
        "description": "y-websocket messages on /yjs/{room}, one per binary WebSocket message. Made by real Yjs/y-protocols with fixed client IDs (doc A = client 1, B = 2). Message types: 0 sync (sync type 0 step 1 = varUint8Array state vector, 1 step 2 = varUint8Array update, 2 update), 1 awareness (varUint8Array of: count, then per client varUint id, varUint clock, varString state JSON), 2 auth (0 permission-denied, varString reason), 3 query-awareness. `invalid` lists messages relayd must close with 1008.",
        "version": 1,
        "generated_by": "protocol/generate/yprotocols.js (" + d["made_with"] + ")",
        "confirmed_by": "crosscheck_relayctl.py decodes every message with `relayctl yjs inspect --kind message`; probe_relayd.py checks relayd's opening frame, step 2 answer, broadcast, permission-denied and the invalid messages on a live /yjs",
        "messages": d["messages"],
        "invalid": [dict(i, expect={"kind": "close", "code": 1008}) for i in d["invalid"]],
    }


# ---------------------------------------------------------------- close-code table in the doc

CLIENT_ACTIONS = {
    "reconnect_backoff": "reconnect with backoff",
    "remint_once_then_stop": "mint a new token once; stop if it is refused again",
    "stop": "stop; do not reconnect",
    "reconnect_recover": "reconnect, resubscribe with `positions` to recover",
    "reconnect_after_retry_after_ms": "reconnect after `retry_after_ms`",
}
BEGIN = "<!-- close-codes:begin (generated from protocol/vectors/close-codes.json by protocol/generate/gen.py; do not edit) -->"
END = "<!-- close-codes:end -->"


def close_table():
    with open(os.path.join(VECTORS, "close-codes.json")) as f:
        cc = json.load(f)
    codes = [c["code"] for c in cc["codes"]]
    assert len(codes) == len(set(codes)), "a code appears twice"
    rows = ["| Code | Name | Meaning | Endpoints | Client should | /yjs provider error |", "|---|---|---|---|---|---|"]
    for c in cc["codes"]:
        meaning = c["meaning"]
        if "reasons" in c:
            meaning += " (" + ", ".join("`%s`" % r for r in c["reasons"]) + ")"
        prov = "—" if c["provider_error"] is None else "`%s`" % c["provider_error"]
        if c.get("provider_error_when_expired"):
            prov += "; `%s` when the reason is `token expired`" % c["provider_error_when_expired"]
        if c["provider_error"] is None and "/yjs" in c["endpoints"]:
            prov = "— (disconnect, automatic retry)"
        if "/yjs" not in c["endpoints"]:
            prov = "n/a"
        rows.append("| %d | `%s` | %s | %s | %s | %s |" % (
            c["code"], c["name"], meaning.replace("|", "\\|"), ", ".join("`%s`" % e for e in c["endpoints"]),
            CLIENT_ACTIONS[c["client"]], prov))
    return "\n".join(rows)


def doc_with_table(doc):
    if BEGIN not in doc or END not in doc:
        raise SystemExit("Docs/protocol.md has no close-code markers")
    head, rest = doc.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return head + BEGIN + "\n" + close_table() + "\n" + END + tail


# ---------------------------------------------------------------- main

def dump(obj):
    return json.dumps(obj, indent=1, ensure_ascii=True) + "\n"


def varuint(n):
    out = bytearray()
    while n > 0x7F:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    out.append(n)
    return bytes(out)


def varstring(t):
    b = t.encode()
    return varuint(len(b)) + b


def e2e_vectors():
    """Encrypted Yjs rooms (Docs/protocol.md "Encrypted Yjs rooms"): the relay's messages, a room
    key as WordPress derives it, and sealed payloads as relay-realtime's provider makes them."""
    messages = []

    def msg(name, direction, data, fields):
        messages.append({"name": name, "direction": direction, "hex": data.hex(), "fields": fields})

    sealed = bytes.fromhex("01750201020304")
    msg("sync request from scratch", "client", b"\x10" + varuint(0), {"type": 16, "known_seq": 0})
    msg("sync request after 300", "client", b"\x10" + varuint(300), {"type": 16, "known_seq": 300})
    msg("update", "client", b"\x11" + sealed, {"type": 17, "sealed_hex": sealed.hex()})
    msg("snapshot through 500", "client", b"\x12" + varuint(500) + sealed, {"type": 18, "through_seq": 500, "sealed_hex": sealed.hex()})
    msg("awareness", "client", b"\x13" + sealed, {"type": 19, "sealed_hex": sealed.hex()})
    msg("stored snapshot", "relay", b"\x20" + varuint(500) + sealed, {"type": 32, "through_seq": 500, "sealed_hex": sealed.hex()})
    msg("log entry", "relay", b"\x21" + varuint(2 ** 40) + sealed, {"type": 33, "seq": 2 ** 40, "sealed_hex": sealed.hex()})
    msg("synced", "relay", b"\x22" + varuint(501) + varuint(7), {"type": 34, "last_seq": 501, "peer": 7})
    msg("peer awareness", "relay", b"\x23" + varuint(7) + sealed, {"type": 35, "peer": 7, "sealed_hex": sealed.hex()})
    msg("peer left", "relay", b"\x24" + varuint(7), {"type": 36, "peer": 7})
    msg("snapshot request", "relay", b"\x25" + varuint(525), {"type": 37, "through_seq": 525})
    msg("snapshot stored", "relay", b"\x26" + varuint(525), {"type": 38, "through_seq": 525})
    msg("denied", "relay", b"\x27" + varstring("read-only token"), {"type": 39, "reason": "read-only token"})
    invalid = [
        {"name": "unknown type", "hex": "01"},
        {"name": "trailing byte after a sync request", "hex": "100500"},
        {"name": "empty", "hex": ""},
        {"name": "truncated varUint", "hex": "2180"},
    ]

    room = "postType/post:42"
    kid = "p1"
    room_key = hkdf(ENCRYPTION_SEED.encode(), SITE_KEY.encode(), ("relay-realtime/yjs-e2e/1:" + kid + ":" + room).encode())
    writer = bytes(range(0x10, 0x20))
    seals = []
    # A Yjs v1 update inserting "hi" at the start of a root text "t" (client 1, clock 0).
    update = bytes.fromhex("010101000401017402686900")
    for kind, name, counter, plaintext in ((0x75, "update", 1, update), (0x61, "awareness", 2, b"\x00"), (0x73, "snapshot", 3, varuint(len(update)) + update + varuint(1) + writer + varuint(1))):
        header = bytes([1, kind]) + varstring(kid) + writer + varuint(counter)
        ad = b"relay-realtime/yjs-e2e/1" + b"\x00" + SITE_ID.encode() + b"\x00" + room.encode() + b"\x00" + header
        nonce = hashlib.sha256(("relay-vector-e2e-" + name).encode()).digest()[:12]
        ct = AESGCM(room_key).encrypt(nonce, plaintext, ad)
        seals.append({"kind": name, "counter": counter, "plaintext_hex": plaintext.hex(), "associated_data_hex": ad.hex(),
                      "nonce_hex": nonce.hex(), "sealed_hex": (header + nonce + ct).hex()})
    return {
        "generated_by": GENERATED_BY,
        "messages": messages,
        "invalid_messages": invalid,
        "room_key": {"seed": ENCRYPTION_SEED, "site_key": SITE_KEY, "kid": kid, "room": room,
                     "info": "relay-realtime/yjs-e2e/1:" + kid + ":" + room, "key_b64url": b64url(room_key)},
        "sealing": {"site_id": SITE_ID, "room": room, "kid": kid, "writer_hex": writer.hex(), "seals": seals,
                    "moved_room": "postType/post:43"},
    }


def main():
    check = "--check" in sys.argv[1:]
    _selftest_xchacha()
    outputs = {
        "json.json": dump(json_vectors()),
        "tokens.json": dump(token_vectors()),
        "signatures.json": dump(signature_vectors()),
        "envelopes.json": dump(envelope_vectors()),
        "frames.json": dump(frame_vectors()),
        "yprotocols.json": dump(yprotocol_vectors()),
        "yjs-e2e.json": dump(e2e_vectors()),
    }
    targets = {os.path.join(VECTORS, k): v for k, v in outputs.items()}
    with open(DOC) as f:
        doc = f.read()
    targets[DOC] = doc_with_table(doc)
    bad = 0
    for path, new in targets.items():
        old = open(path).read() if os.path.exists(path) else ""
        if old == new:
            continue
        if check:
            bad += 1
            rel = os.path.relpath(path, ROOT)
            sys.stdout.writelines(list(difflib.unified_diff(old.splitlines(True), new.splitlines(True), rel, rel + " (regenerated)"))[:60])
        else:
            with open(path, "w") as f:
                f.write(new)
            print("wrote", os.path.relpath(path, ROOT))
    if check:
        print("gen.py --check: %s" % ("OK, vectors and the close-code table are up to date" if not bad else "%d file(s) differ" % bad))
        sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
