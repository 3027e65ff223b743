"""Sign requests with the real botocore and send them through a running portcullis.

Usage: python sigv4_botocore.py PORT DIR   (DIR holds client.pem, client.key, ca.pem)
Every request must pass (200, principal forwarded); the same requests with one byte
changed in a signed header, the body, the path, the query or the date must get 403.
Driven by tests/sigv4.rs.
"""
import http.client
import json
import ssl
import sys

from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

PORT, DIR = int(sys.argv[1]), sys.argv[2]
HOST = f"localhost:{PORT}"
REGION, SERVICE = "us-east-1", "execute-api"
LONG = Credentials("AKIDORDERS", "orders-secret-key-for-tests-only")
SESSION = Credentials("AKIDSESSION", "session-secret", "FQoGZXIvYXdzEXAMPLE//token+with/odd=chars")

ctx = ssl.create_default_context(cafile=f"{DIR}/ca.pem")
ctx.load_cert_chain(f"{DIR}/client.pem", f"{DIR}/client.key")
failures = []


def sign(method, path, body=b"", headers=None, creds=LONG, presign=False):
    req = AWSRequest(method=method, url=f"https://{HOST}{path}", data=body, headers=dict(headers or {}))
    if presign:
        SigV4QueryAuth(creds, SERVICE, REGION, expires=300).add_auth(req)
    else:
        SigV4Auth(creds, SERVICE, REGION).add_auth(req)
    target = req.url[len(f"https://{HOST}"):]
    return method, target, body, {k: v for k, v in req.headers.items()}


def send(method, target, body, headers):
    conn = http.client.HTTPSConnection("localhost", PORT, context=ctx, timeout=10)
    hdrs = dict(headers)
    hdrs["Host"] = HOST
    conn.request(method, target, body=body or None, headers=hdrs)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, data


def expect_ok(name, signed, principal="svc-orders"):
    status, data = send(*signed)
    if status != 200:
        failures.append(f"{name}: want 200, got {status}: {data[:300]!r}")
        return
    seen = json.loads(data)
    got = seen["headers"].get("x-client-principal", [None])[0]
    if got != principal:
        failures.append(f"{name}: principal {got!r}, want {principal!r}")
    print(f"ok   {name}: {signed[0]} {signed[1][:100]}")


def expect_refused(name, signed):
    status, data = send(*signed)
    if status != 403:
        failures.append(f"{name}: want 403, got {status}: {data[:300]!r}")
        return
    code = json.loads(data).get("__type")
    print(f"ok   {name}: refused with {code}")


def bump_second(amz_date):
    """Move an X-Amz-Date (YYYYMMDDTHHMMSSZ) by one second's digit, staying within skew."""
    d = amz_date[-2]
    return amz_date[:-2] + str((int(d) + 1) % 10) + "Z"


def bump(s):
    """Change one character (the last alphanumeric) of a string."""
    for i in range(len(s) - 1, -1, -1):
        c = s[i]
        if c.isdigit():
            return s[:i] + str((int(c) + 1) % 10) + s[i + 1:]
        if c.isalpha():
            return s[:i] + ("a" if c != "a" else "b") + s[i + 1:]
    raise ValueError(s)


paths = {
    "spaces and unicode": "/signed/a%20space/%E2%9C%93/%C3%BCber",
    "dot segments": "/signed/one/../two/./three",
    "double slashes": "/signed//x//y/",
    "reserved raw": "/signed/res!$'()*+,;=:@x",
    "reserved encoded": "/signed/enc%21%24%27%28%29%2A%2B%2C%3B%3D%3A%40",
    "tilde and unreserved": "/signed/~user/a-b_c.d",
}
for name, p in paths.items():
    expect_ok(f"GET {name}", sign("GET", p))

queries = {
    "repeated keys": "/signed/q?b=2&a=2&a=1",
    "encoded keys": "/signed/q?key%20with%20space=v%2Fslash&%E2%9C%93=check&empty=",
    "key without value": "/signed/q?flag&z=%2B",
}
for name, p in queries.items():
    expect_ok(f"GET {name}", sign("GET", p))

expect_ok("POST json", sign("POST", "/signed/orders", b'{"item": "book", "qty": 2}', {"Content-Type": "application/json"}))
expect_ok("POST form", sign("POST", "/signed/form", b"a=1&b=two%20words&c=%E2%9C%93", {"Content-Type": "application/x-www-form-urlencoded"}))
expect_ok("GET session token", sign("GET", "/signed/session", creds=SESSION), principal="svc-session")
expect_ok("presigned GET", sign("GET", "/signed/presigned?x=1", presign=True))
expect_ok("presigned GET session token", sign("GET", "/signed/presigned", creds=SESSION, presign=True), principal="svc-session")

# One byte changed after signing.
m, t, b, h = sign("POST", "/signed/orders?a=1", b'{"qty": 2}', {"Content-Type": "application/json", "X-Custom": "abc"})
expect_refused("tampered signed header", (m, t, b, {**h, "X-Custom": "abd"}))
expect_refused("tampered body", (m, t, b'{"qty": 3}', h))
expect_refused("tampered path", (m, t.replace("/orders", "/ordert"), b, h))
expect_refused("tampered query", (m, t.replace("a=1", "a=2"), b, h))
expect_refused("tampered date", (m, t, b, {**h, "X-Amz-Date": bump_second(h["X-Amz-Date"])}))
m, t, b, h = sign("GET", "/signed/presigned?x=1", presign=True)
expect_refused("tampered presigned query", (m, t.replace("x=1", "x=2"), b, h))
date = t.split("X-Amz-Date=")[1][:16]
expect_refused("tampered presigned date", (m, t.replace(date, bump_second(date)), b, h))
m, t, b, h = sign("GET", "/signed/session", creds=SESSION)
expect_refused("tampered session token", (m, t, b, {**h, "X-Amz-Security-Token": bump(h["X-Amz-Security-Token"])}))
expect_ok("original still passes", sign("GET", "/signed/q?b=2&a=2&a=1"))

if failures:
    print("FAILURES:\n" + "\n".join(failures))
    sys.exit(1)
print("botocore: all requests behaved")
