"""Sign requests with session credentials by the real botocore and send them through a
running portcullis (`[auth.sigv4] sessions = true`).

Usage: python sigv4_sessions_botocore.py PORT DIR CREDS
DIR holds client.pem, client.key, ca.pem; CREDS is JSON {"orders": [akid, secret, token],
"billing": [...], "serial": "<session name>"}. Driven by tests/sigv4_sessions/python.rs.
"""
import http.client
import json
import ssl
import sys

from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

PORT, DIR, CREDS = int(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])
HOST = f"localhost:{PORT}"
REGION, SERVICE = "us-east-1", "execute-api"
ORDERS = Credentials(*CREDS["orders"])
BILLING = Credentials(*CREDS["billing"])

ctx = ssl.create_default_context(cafile=f"{DIR}/ca.pem")
ctx.load_cert_chain(f"{DIR}/client.pem", f"{DIR}/client.key")
failures = []


def sign(method, path, creds, body=b"", presign=False):
    req = AWSRequest(method=method, url=f"https://{HOST}{path}", data=body)
    if presign:
        SigV4QueryAuth(creds, SERVICE, REGION, expires=300).add_auth(req)
    else:
        SigV4Auth(creds, SERVICE, REGION).add_auth(req)
    target = req.url[len(f"https://{HOST}"):]
    return method, target, body, dict(req.headers.items())


def send(method, target, body, headers):
    conn = http.client.HTTPSConnection("localhost", PORT, context=ctx, timeout=10)
    conn.request(method, target, body=body or None, headers={**headers, "Host": HOST})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, data


def expect(name, signed, status, check=None):
    got, data = send(*signed)
    if got != status:
        failures.append(f"{name}: want {status}, got {got}: {data[:300]!r}")
        return
    if check:
        problem = check(json.loads(data))
        if problem:
            failures.append(f"{name}: {problem}")
            return
    print(f"ok   {name}: {signed[0]} {signed[1][:80]} -> {got}")


def identity(role, attributes):
    def check(seen):
        h = {k: v[0] for k, v in seen["headers"].items()}
        want = {
            "x-client-role": role,
            "x-client-session": CREDS["serial"],
            "x-client-principal": f"role/{role}/{CREDS['serial']}",
            "x-client-source-identity": "worker-9",
        }
        for k, v in want.items():
            if h.get(k) != v:
                return f"{k} = {h.get(k)!r}, want {v!r}"
        if h.get("x-client-attributes") != attributes:
            return f"x-client-attributes = {h.get('x-client-attributes')!r}"
        return None
    return check


def aws_code(code):
    return lambda body: None if body.get("__type") == code else f"__type {body.get('__type')!r}, want {code}"


m, t, b, h = sign("GET", "/echo/orders?a=1", ORDERS)
if "X-Amz-Security-Token" not in h or "x-amz-security-token" not in h["Authorization"]:
    failures.append(f"botocore did not sign the token: {h}")
expect("SigV4Auth session", (m, t, b, h), 200, identity("orders-reader", '{"team":"orders","tier":"gold"}'))
expect("SigV4Auth POST session", sign("POST", "/echo/orders", ORDERS, b'{"qty": 2}'), 200)
expect("SigV4QueryAuth session", sign("GET", "/echo/presigned?x=1", ORDERS, presign=True), 200, identity("orders-reader", '{"team":"orders","tier":"gold"}'))
expect("billing session", sign("GET", "/echo/billing", BILLING), 200, identity("billing-reader", None))
expect("policy by role: orders on /orders", sign("GET", "/orders/1", ORDERS), 200)
expect("policy by role: billing on /orders", sign("GET", "/orders/1", BILLING), 403)

# Refusals botocore can produce: another session's token, a tampered token.
swapped = Credentials(ORDERS.access_key, ORDERS.secret_key, BILLING.token)
expect("token of another access key id", sign("GET", "/echo/x", swapped), 403, aws_code("InvalidClientTokenId"))
tampered = Credentials(ORDERS.access_key, ORDERS.secret_key, ORDERS.token[:-4] + ("AAAA" if ORDERS.token[-4:] != "AAAA" else "BBBB"))
expect("tampered token", sign("GET", "/echo/x", tampered), 403, aws_code("InvalidClientTokenId"))
no_token = Credentials(ORDERS.access_key, ORDERS.secret_key)
expect("no token", sign("GET", "/echo/x", no_token), 403, aws_code("InvalidClientTokenId"))
expect("presigned, tampered token", sign("GET", "/echo/x", tampered, presign=True), 403, aws_code("InvalidClientTokenId"))

if failures:
    print("FAILURES:\n" + "\n".join(failures))
    sys.exit(1)
print("botocore sessions: all requests behaved")
