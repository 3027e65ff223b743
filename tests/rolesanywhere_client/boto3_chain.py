"""boto3's own credential chain against `portcullis credentials` and `portcullis agent`.

Usage: python rolesanywhere_boto3.py MODE [SIGNED_URL CA CERT KEY]
  MODE process:   AWS_CONFIG_FILE names a profile `portcullis` with credential_process
  MODE imds:      AWS_EC2_METADATA_SERVICE_ENDPOINT points at the agent
  MODE container: AWS_CONTAINER_CREDENTIALS_FULL_URI + AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE
The environment is set by the caller (tests/rolesanywhere_client/). Prints one JSON line
{"method", "access_key", "expiry"} and, with SIGNED_URL, the status and body of a GET
signed with those credentials (botocore SigV4Auth, service execute-api) sent over mTLS.
"""
import datetime
import http.client
import json
import ssl
import sys
import urllib.parse

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

mode = sys.argv[1]
session = boto3.Session(profile_name="portcullis") if mode == "process" else boto3.Session()
creds = session.get_credentials()
if creds is None:
    print(json.dumps({"method": None}))
    sys.exit(0)
frozen = creds.get_frozen_credentials()
expiry = getattr(creds, "_expiry_time", None)
out = {
    "method": creds.method,
    "access_key": frozen.access_key,
    "has_token": bool(frozen.token),
    "expiry_left": (expiry - datetime.datetime.now(datetime.timezone.utc)).total_seconds() if expiry else None,
}
if len(sys.argv) > 2:
    url, ca, cert, key = sys.argv[2:6]
    req = AWSRequest(method="GET", url=url, data=b"")
    SigV4Auth(frozen, "execute-api", "us-east-1").add_auth(req)
    parts = urllib.parse.urlsplit(url)
    ctx = ssl.create_default_context(cafile=ca)
    ctx.load_cert_chain(cert, key)
    conn = http.client.HTTPSConnection(parts.hostname, parts.port, context=ctx, timeout=10)
    headers = dict(req.headers.items())
    headers["Host"] = parts.netloc
    conn.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""), headers=headers)
    resp = conn.getresponse()
    out["status"] = resp.status
    out["body"] = resp.read().decode(errors="replace")
print(json.dumps(out))
