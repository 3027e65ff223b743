"""Mint test tokens with PyJWT: reads {"issuer", "client_id"} on stdin, writes
{"jwks", "rotated", "tokens": {case: token}} on stdout. Keys are made fresh each run."""
import base64
import hashlib
import hmac
import json
import sys
import time

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

spec = json.load(sys.stdin)
iss, client_id, now = spec["issuer"], spec["client_id"], int(time.time())
rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ec_key = ec.generate_private_key(ec.SECP256R1())
new_key = ec.generate_private_key(ec.SECP256R1())


def jwk(public, kid, alg, algorithm):
    d = json.loads(algorithm.to_jwk(public))
    d.update(kid=kid, use="sig", alg=alg)
    return d


keys = [
    jwk(rsa_key.public_key(), "rsa-1", "RS256", RSAAlgorithm),
    jwk(ec_key.public_key(), "ec-1", "ES256", ECAlgorithm),
]
rotated = keys + [jwk(new_key.public_key(), "ec-2", "ES256", ECAlgorithm)]


def claims(**kw):
    c = {"iss": iss, "client_id": client_id, "token_use": "access",
         "scope": "orders/read", "sub": "py-svc", "iat": now, "exp": now + 300}
    c.update(kw)
    return {k: v for k, v in c.items() if v is not None}


def rs(c):
    return jwt.encode(c, rsa_key, algorithm="RS256", headers={"kid": "rsa-1"})


def es(c, key=ec_key, kid="ec-1"):
    return jwt.encode(c, key, algorithm="ES256", headers={"kid": kid})


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def hs256_with_public_key(c):
    # PyJWT refuses a PEM public key as an HMAC secret, so sign by hand: the attack.
    pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    h = b64(json.dumps({"alg": "HS256", "kid": "rsa-1", "typ": "JWT"}).encode())
    p = b64(json.dumps(c).encode())
    sig = hmac.new(pem, f"{h}.{p}".encode(), hashlib.sha256).digest()
    return f"{h}.{p}.{b64(sig)}"


valid = rs(claims())
h, _, s = valid.split(".")
tampered = ".".join([h, b64(json.dumps(claims(scope="orders/read orders/admin")).encode()), s])
tokens = {
    "rs256": valid,
    "es256": es(claims()),
    "expired": rs(claims(exp=now - 120, iat=now - 600)),
    "not_yet_valid": rs(claims(nbf=now + 600)),
    "wrong_issuer": rs(claims(iss="https://evil.test")),
    "wrong_client_id": rs(claims(client_id="someone-else")),
    "id_token": rs(claims(token_use="id", aud=client_id, client_id=None)),
    "missing_scope": rs(claims(scope="orders/write")),
    "alg_none": jwt.encode(claims(), None, algorithm="none"),
    "hs256_pubkey": hs256_with_public_key(claims()),
    "tampered": tampered,
    "oversize": rs(claims(pad="x" * 9000)),
    "unknown_kid": es(claims(), key=new_key, kid="ec-2"),
}
json.dump({"jwks": {"keys": keys}, "rotated": {"keys": rotated}, "tokens": tokens}, sys.stdout)
