"""Real OAuth2 clients against the gateway's token service, driven by tests/oauth2/python.rs.

Reads a JSON spec on stdin (URLs, the test CA, a client certificate and key, the client id
and secret); prints one JSON object with what each client saw. Every HTTPS call trusts the
test CA (verify=) and presents the client certificate (cert=).
"""

import json
import sys

import jwt
import requests
from authlib.integrations.requests_client import OAuth2Session
from oauthlib.oauth2 import BackendApplicationClient
from requests_oauthlib import OAuth2Session as RequestsOAuth2Session


def call_api(session, spec):
    r = session.get(spec["api_url"], verify=spec["ca"], cert=(spec["cert"], spec["key"]), timeout=10)
    body = r.json() if r.headers.get("content-type", "").startswith("application/json") else None
    return {"status": r.status_code, "headers": body["headers"] if body else None}


def authlib_flow(spec, method):
    s = OAuth2Session(
        spec["client_id"],
        spec["client_secret"],
        token_endpoint_auth_method=method,
        scope="orders/read",
    )
    s.verify = spec["ca"]
    s.cert = (spec["cert"], spec["key"])
    token = s.fetch_token(spec["token_url"], grant_type="client_credentials", timeout=10)
    out = {"token": token["access_token"], "scope": token.get("scope"), "expires_in": token.get("expires_in")}
    out["api"] = call_api(s, spec)
    return out


def requests_oauthlib_flow(spec):
    client = BackendApplicationClient(client_id=spec["client_id"])
    s = RequestsOAuth2Session(client=client)
    token = s.fetch_token(
        token_url=spec["token_url"],
        client_id=spec["client_id"],
        client_secret=spec["client_secret"],
        scope=["orders/read"],
        verify=spec["ca"],
        cert=(spec["cert"], spec["key"]),
        timeout=10,
    )
    out = {"token": token["access_token"], "scope": token.get("scope")}
    out["api"] = call_api(s, spec)
    return out


def pyjwt_verify(spec, token):
    """Check the signature independently: PyJWT with the key from the served JWKS."""
    jwks = requests.get(spec["jwks_url"], verify=spec["ca"], cert=(spec["cert"], spec["key"]), timeout=10).json()
    kid = jwt.get_unverified_header(token)["kid"]
    key = next(k for k in jwks["keys"] if k["kid"] == kid)
    claims = jwt.decode(
        token,
        jwt.PyJWK(key).key,
        algorithms=[key["alg"]],
        issuer=spec["issuer"],
        options={"require": ["exp", "iat", "iss", "jti"]},
    )
    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    try:
        jwt.decode(tampered, jwt.PyJWK(key).key, algorithms=[key["alg"]], options={"verify_aud": False})
        tampered_ok = True
    except jwt.InvalidTokenError:
        tampered_ok = False
    return {"claims": claims, "tampered_accepted": tampered_ok}


def main():
    spec = json.load(sys.stdin)
    out = {
        "authlib_basic": authlib_flow(spec, "client_secret_basic"),
        "authlib_post": authlib_flow(spec, "client_secret_post"),
        "requests_oauthlib": requests_oauthlib_flow(spec),
    }
    out["pyjwt"] = pyjwt_verify(spec, out["authlib_basic"]["token"])
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
