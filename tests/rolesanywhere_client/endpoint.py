"""A stand-in CreateSession endpoint that checks `portcullis credentials`/`agent` requests
independently of the gateway: it rebuilds the canonical request and the string to sign
from the bytes received (its own code, with `cryptography` verifying the signature), and
answers 201 with the issue's credentialSet shape.

Usage: python rolesanywhere_server.py DIR
  DIR/server.pem, DIR/server.key: its TLS certificate; DIR/ca.pem: the CA client
  certificates must chain to (the TLS client certificate is required and must be the
  X-Amz-X509 leaf). It writes DIR/port once listening, appends one JSON line per request
  to DIR/requests.log ({"ok", "reason", "akid", "alg", ...}) and reads DIR/mode before each
  answer: "ok" (default), "ok SECONDS" (expiration that far ahead instead of
  durationSeconds), "deny" (403 AccessDeniedException).
Driven by tests/rolesanywhere_client/.
"""
import base64
import datetime
import hashlib
import json
import os
import secrets
import ssl
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

DIR = sys.argv[1]
REGION = "us-east-1"
ANCHOR = "arn:aws:rolesanywhere:us-east-1:000000000000:trust-anchor/fleet"
PROFILE = "arn:aws:rolesanywhere:us-east-1:000000000000:profile/workers"
ROLE = "arn:aws:iam::000000000000:role/orders-reader"
LOCK = threading.Lock()
COUNT = [0]


def enc(s):
    return urllib.parse.quote(s, safe="-_.~")


def canonical_query(raw):
    pairs = urllib.parse.parse_qsl(raw, keep_blank_values=True)
    return "&".join(f"{k}={v}" for k, v in sorted((enc(k), enc(v)) for k, v in pairs))


def mode():
    try:
        with open(os.path.join(DIR, "mode")) as f:
            return f.read().split()
    except FileNotFoundError:
        return ["ok"]


def check(h, body):
    """The reason the request is wrong, or None; and what it told."""
    url = urllib.parse.urlsplit(h.path)
    if h.command != "POST" or url.path != "/sessions":
        return f"{h.command} {url.path}", {}
    auth = h.headers.get("Authorization", "")
    alg, _, rest = auth.partition(" ")
    fields = dict(p.strip().split("=", 1) for p in rest.split(","))
    serial, day, region, service, term = fields["Credential"].split("/")
    signed = fields["SignedHeaders"].split(";")
    leaf_der = base64.b64decode(h.headers["X-Amz-X509"], validate=True)
    leaf = x509.load_der_x509_certificate(leaf_der)
    for need in ("host", "x-amz-date", "x-amz-x509", "content-type"):
        if need not in signed:
            return f"{need} not signed", {}
    if h.headers.get("X-Amz-X509-Chain") is not None:
        if "x-amz-x509-chain" not in signed:
            return "chain not signed", {}
        for c in h.headers["X-Amz-X509-Chain"].split(","):
            x509.load_der_x509_certificate(base64.b64decode(c, validate=True))
    if serial != str(leaf.serial_number):
        return f"serial {serial} != {leaf.serial_number}", {}
    if (region, service, term) != (REGION, "rolesanywhere", "aws4_request"):
        return f"scope {region}/{service}/{term}", {}
    date = h.headers["X-Amz-Date"]
    if day != date[:8]:
        return "scope date", {}
    when = datetime.datetime.strptime(date, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
    if abs((datetime.datetime.now(datetime.timezone.utc) - when).total_seconds()) > 300:
        return "stale date", {}
    peer = h.connection.getpeercert(binary_form=True)
    if peer != leaf_der:
        return "TLS client certificate is not the X-Amz-X509 leaf", {}
    headers = "".join(f"{n}:{h.headers.get(n, '').strip()}\n" for n in signed)
    canonical = "\n".join([
        "POST", url.path, canonical_query(url.query), headers,
        ";".join(signed), hashlib.sha256(body).hexdigest(),
    ])
    to_sign = "\n".join([alg, date, f"{day}/{region}/{service}/{term}",
                         hashlib.sha256(canonical.encode()).hexdigest()])
    sig = bytes.fromhex(fields["Signature"])
    key = leaf.public_key()
    try:
        if isinstance(key, rsa.RSAPublicKey):
            want = "AWS4-X509-RSA-SHA256"
            key.verify(sig, to_sign.encode(), padding.PKCS1v15(), hashes.SHA256())
        else:
            want = "AWS4-X509-ECDSA-SHA256"
            key.verify(sig, to_sign.encode(), ec.ECDSA(hashes.SHA256()))
    except Exception:
        return "bad signature", {}
    if alg != want:
        return f"algorithm {alg} for a {want} key", {}
    query = dict(urllib.parse.parse_qsl(url.query))
    if query != {"profileArn": PROFILE, "roleArn": ROLE, "trustAnchorArn": ANCHOR}:
        return f"query ARNs {query}", {}
    if h.headers.get("Content-Type") != "application/json":
        return "content type", {}
    told = json.loads(body)
    if not 900 <= told.get("durationSeconds", 0) <= 43200:
        return "duration", told
    return None, dict(told, alg=alg, chain=h.headers.get("X-Amz-X509-Chain") is not None)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, doc, error_type=None):
        data = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if error_type:
            self.send_header("x-amzn-ErrorType", error_type)
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        try:
            reason, told = check(self, body)
        except Exception as e:  # a malformed request is a failure of the client under test
            reason, told = f"malformed: {e!r}", {}
        m = mode()
        record = dict(told, ok=reason is None and m[0] != "deny", reason=reason)
        if reason is not None:
            reply = (400, {"message": reason}, "ValidationException")
        elif m[0] == "deny":
            reply = (403, {"message": "the test server denies this certificate"}, "AccessDeniedException")
        else:
            with LOCK:
                COUNT[0] += 1
                n = COUNT[0]
            akid = f"ASIATEST{n:012d}"
            life = int(m[1]) if len(m) > 1 else told["durationSeconds"]
            exp = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=life)
            record["akid"] = akid
            reply = (201, {
                "credentialSet": [{
                    "assumedRoleUser": {"arn": f"arn:aws:sts::000000000000:assumed-role/orders-reader/{n}",
                                        "assumedRoleId": f"AROATEST:{n}"},
                    "credentials": {"accessKeyId": akid, "secretAccessKey": secrets.token_urlsafe(30),
                                    "sessionToken": secrets.token_urlsafe(60),
                                    "expiration": exp.strftime("%Y-%m-%dT%H:%M:%SZ")},
                    "packedPolicySize": 0, "roleArn": ROLE, "sourceIdentity": "worker-1"}],
                "subjectArn": "arn:aws:rolesanywhere:us-east-1:000000000000:subject/test"}, None)
        # Logged before the answer: a client that has its answer finds its line.
        with LOCK, open(os.path.join(DIR, "requests.log"), "a") as f:
            f.write(json.dumps(record) + "\n")
        self.answer(*reply)


ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(os.path.join(DIR, "server.pem"), os.path.join(DIR, "server.key"))
ctx.load_verify_locations(os.path.join(DIR, "ca.pem"))
ctx.verify_mode = ssl.CERT_REQUIRED
server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.socket = ctx.wrap_socket(server.socket, server_side=True)
with open(os.path.join(DIR, "port.tmp"), "w") as f:
    f.write(str(server.server_address[1]))
os.rename(os.path.join(DIR, "port.tmp"), os.path.join(DIR, "port"))
server.serve_forever()
