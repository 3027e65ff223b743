"""CreateSession with the real Python client, iam-rolesanywhere-session.

Reads a JSON spec on stdin: {"endpoint": "localhost:PORT", "ca": path, "cases": [{"name",
"cert", "key", "chain"?, "trust_anchor", "profile", "role"}]}; prints one JSON object per
case: the algorithm label the client signed with and the frozen credentials it got.
"""
import json
import sys

from iam_rolesanywhere_session import IAMRolesAnywhereSession

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
    out.append(
        {
            "name": case["name"],
            "algorithm": session._request_signer.algorithm,
            "access_key": frozen.access_key,
            "secret_key": frozen.secret_key,
            "token": frozen.token,
            "expiry": creds._expiry_time.isoformat(),
        }
    )
print(json.dumps(out))
