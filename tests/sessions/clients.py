"""CreateSession with the real Python client, iam-rolesanywhere-session.

Reads a JSON spec on stdin: {"endpoint": "localhost:PORT", "ca": path, "cases": [{"name",
"cert", "key", "chain"?, "trust_anchor", "profile", "role"}]}; prints one JSON object per
case: the algorithm label the client signed with, the frozen credentials it got, and what
the `/signed` route (["mtls", "sigv4"], sessions = true) answered to a request botocore
signed with them, in a header (SigV4Auth) and presigned (SigV4QueryAuth). The TLS client
certificate of those calls is "tls_cert"/"tls_key": session credentials are not bound to it.
"""
import json
import sys

import requests
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from iam_rolesanywhere_session import IAMRolesAnywhereSession


def call(url, headers):
    r = requests.get(
        url, headers=headers, cert=(spec["tls_cert"], spec["tls_key"]), verify=spec["ca"], timeout=10
    )
    return {"status": r.status_code, "body": r.json() if r.status_code == 200 else r.text}


def signed_calls(name, frozen):
    creds = Credentials(frozen.access_key, frozen.secret_key, frozen.token)
    url = f"https://{spec['endpoint']}/signed/{name}"
    req = AWSRequest(method="GET", url=url)
    SigV4Auth(creds, "execute-api", "us-east-1").add_auth(req)
    header = call(url, dict(req.headers))
    pre = AWSRequest(method="GET", url=url)
    SigV4QueryAuth(creds, "execute-api", "us-east-1", expires=300).add_auth(pre)
    presigned = call(pre.url, {})
    return header, presigned


spec = json.load(sys.stdin)
out = []
for case in spec["cases"]:
    session = IAMRolesAnywhereSession(
        profile_arn=case["profile"],
        role_arn=case["role"],
        trust_anchor_arn=case["trust_anchor"],
        certificate=case["cert"],
        private_key=case["key"],
        certificate_chain=case.get("chain"),
        region="us-east-1",
        endpoint=spec["endpoint"],
        verify=spec["ca"],
        session_duration=3600,
    )
    creds = session.get_refreshable_credentials()
    frozen = creds.get_frozen_credentials()
    header, presigned = signed_calls(case["name"], frozen)
    out.append(
        {
            "name": case["name"],
            "algorithm": session._request_signer.algorithm,
            "access_key": frozen.access_key,
            "secret_key": frozen.secret_key,
            "token": frozen.token,
            "expiry": creds._expiry_time.isoformat(),
            "signed": header,
            "presigned": presigned,
        }
    )
print(json.dumps(out))
