"""CreateSession benchmark helper (loadtest/compare/issuer.sh, figure C). Not a test.

  sessions.py pki DIR          a trust anchor: DIR/truststore/{roots,crls}, and two client
                               leaves DIR/ec.{pem,key} (P-256) and DIR/rsa.{pem,key} (2048)
  sessions.py sign DIR KIND HOST ANCHOR PROFILE ROLE BODY
                               prints `-H 'name: value'` lines for loadtest: a CreateSession
                               signed with DIR/KIND.key as iam-rolesanywhere-session signs
                               (valid for the gateway's max_skew; replayed by the benchmark)

Uses the `cryptography` of the test venv (tests/requirements.txt).
"""
import base64
import datetime
import hashlib
import os
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def pem_key(key):
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def pki(d):
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("bench sessions CA"))
        .issuer_name(name("bench sessions CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
    for sub in ("truststore/roots", "truststore/crls"):
        os.makedirs(os.path.join(d, sub), exist_ok=True)
    with open(os.path.join(d, "truststore/roots/root.pem"), "wb") as f:
        f.write(ca.public_bytes(serialization.Encoding.PEM))
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.subject)
        .last_update(now - datetime.timedelta(hours=1))
        .next_update(now + datetime.timedelta(days=7))
        .add_extension(x509.CRLNumber(1), critical=False)
        .add_extension(aki, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    with open(os.path.join(d, "truststore/crls/root.crl.pem"), "wb") as f:
        f.write(crl.public_bytes(serialization.Encoding.PEM))
    for kind, key in (
        ("ec", ec.generate_private_key(ec.SECP256R1())),
        ("rsa", rsa.generate_private_key(public_exponent=65537, key_size=2048)),
    ):
        leaf = (
            x509.CertificateBuilder()
            .subject_name(name(f"worker-{kind}"))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=7))
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.UniformResourceIdentifier(f"spiffe://bench.test/worker/{kind}")]
                ),
                critical=False,
            )
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
            )
            .add_extension(aki, critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        with open(os.path.join(d, f"{kind}.pem"), "wb") as f:
            f.write(leaf.public_bytes(serialization.Encoding.PEM))
        with open(os.path.join(d, f"{kind}.key"), "wb") as f:
            f.write(pem_key(key))


def sign(d, kind, host, anchor, profile, role, body):
    with open(os.path.join(d, f"{kind}.pem"), "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    with open(os.path.join(d, f"{kind}.key"), "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    t = datetime.datetime.now(datetime.timezone.utc)
    amz = t.strftime("%Y%m%dT%H%M%SZ")
    x5 = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
    headers = [
        ("content-type", "application/x-amz-json-1.0"),
        ("host", host),
        ("x-amz-date", amz),
        ("x-amz-x509", x5),
    ]
    signed = ";".join(n for n, _ in headers)
    canonical = "POST\n/sessions\n\n" + "".join(f"{n}:{v}\n" for n, v in headers)
    canonical += f"\n{signed}\n{hashlib.sha256(body.encode()).hexdigest()}"
    alg = "AWS4-X509-RSA-SHA256" if kind == "rsa" else "AWS4-X509-ECDSA-SHA256"
    scope = f"{amz[:8]}/us-east-1/rolesanywhere/aws4_request"
    sts = f"{alg}\n{amz}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    if kind == "rsa":
        sig = key.sign(sts.encode(), padding.PKCS1v15(), hashes.SHA256())
    else:
        sig = key.sign(sts.encode(), ec.ECDSA(hashes.SHA256()))
    auth = f"{alg} Credential={cert.serial_number}/{scope}, SignedHeaders={signed}, Signature={sig.hex()}"
    for n, v in headers[:1] + headers[2:] + [("authorization", auth)]:
        print(f"{n}: {v}")


if __name__ == "__main__":
    if sys.argv[1] == "pki":
        pki(sys.argv[2])
    else:
        sign(*sys.argv[2:9])
