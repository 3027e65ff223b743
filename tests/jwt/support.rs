//! Test issuer pieces: signing keys (aws-lc-rs, independent of the gateway's verifier code)
//! and a JWKS server on 127.0.0.1:0 whose key set, availability and request count the test
//! controls.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;

pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub enum KeyKind {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

/// One issuer signing key with its `kid`.
pub struct Signer {
    pub kid: String,
    pub key: KeyKind,
}

impl Signer {
    pub fn rsa(kid: &str) -> Signer {
        Signer {
            kid: kid.into(),
            key: KeyKind::Rsa(RsaKeyPair::generate(KeySize::Rsa2048).unwrap()),
        }
    }

    pub fn ec(kid: &str) -> Signer {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .unwrap();
        Signer {
            kid: kid.into(),
            key: KeyKind::Ec(
                EcdsaKeyPair::from_pkcs8(
                    &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                    pkcs8.as_ref(),
                )
                .unwrap(),
            ),
        }
    }

    pub fn ed(kid: &str) -> Signer {
        Signer {
            kid: kid.into(),
            key: KeyKind::Ed(Ed25519KeyPair::generate().unwrap()),
        }
    }

    pub fn alg(&self) -> &'static str {
        match self.key {
            KeyKind::Rsa(_) => "RS256",
            KeyKind::Ec(_) => "ES256",
            KeyKind::Ed(_) => "EdDSA",
        }
    }

    /// The public JWK, as an issuer publishes it.
    pub fn jwk(&self) -> Value {
        match &self.key {
            KeyKind::Rsa(k) => {
                let c = PublicKeyComponents::<Vec<u8>>::from(k.public_key());
                json!({"kty": "RSA", "kid": self.kid, "use": "sig", "alg": "RS256", "n": b64(&c.n), "e": b64(&c.e)})
            }
            KeyKind::Ec(k) => {
                let p = k.public_key().as_ref();
                json!({"kty": "EC", "kid": self.kid, "use": "sig", "crv": "P-256", "x": b64(&p[1..33]), "y": b64(&p[33..65])})
            }
            KeyKind::Ed(k) => {
                json!({"kty": "OKP", "kid": self.kid, "crv": "Ed25519", "x": b64(k.public_key().as_ref())})
            }
        }
    }

    pub fn sign_bytes(&self, input: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match &self.key {
            KeyKind::Rsa(k) => {
                let mut sig = vec![0; k.public_modulus_len()];
                k.sign(&signature::RSA_PKCS1_SHA256, &rng, input, &mut sig)
                    .unwrap();
                sig
            }
            KeyKind::Ec(k) => k.sign(&rng, input).unwrap().as_ref().to_vec(),
            KeyKind::Ed(k) => k.sign(input).as_ref().to_vec(),
        }
    }

    /// A token with the given header and claims JSON text (exactly as given).
    pub fn sign_raw(&self, header: &str, claims: &str) -> String {
        let input = format!("{}.{}", b64(header), b64(claims));
        let sig = self.sign_bytes(input.as_bytes());
        format!("{input}.{}", b64(sig))
    }

    /// A token with the usual header (`alg`, `kid`, `typ`).
    pub fn sign(&self, claims: &Value) -> String {
        let header = json!({"alg": self.alg(), "kid": self.kid, "typ": "JWT"});
        self.sign_raw(&header.to_string(), &claims.to_string())
    }
}

pub fn jwks(keys: &[&Signer]) -> String {
    json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()}).to_string()
}

struct State {
    body: String,
    version: u64,
    up: bool,
}

/// A JWKS endpoint: `GET /jwks.json`, with `ETag` and 304 on `If-None-Match`.
#[derive(Clone)]
pub struct JwksServer {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    /// Requests answered with 200 or 304 or 503.
    pub requests: Arc<AtomicUsize>,
    pub not_modified: Arc<AtomicUsize>,
}

impl JwksServer {
    pub async fn start(body: String) -> JwksServer {
        JwksServer::start_with(body, None).await
    }

    /// Serve over TLS with this certificate chain and key (PEM).
    pub async fn start_tls(body: String, chain_pem: &str, key_pem: &str) -> JwksServer {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let chain = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        JwksServer::start_with(body, Some(acceptor)).await
    }

    async fn start_with(body: String, tls: Option<tokio_rustls::TlsAcceptor>) -> JwksServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = JwksServer {
            addr: listener.local_addr().unwrap(),
            state: Arc::new(Mutex::new(State {
                body,
                version: 1,
                up: true,
            })),
            requests: Arc::default(),
            not_modified: Arc::default(),
        };
        let s = server.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let s = s.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let s = s.clone();
                        async move { Ok::<_, Infallible>(s.answer(req)) }
                    });
                    let http = hyper::server::conn::http1::Builder::new();
                    match tls {
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(tcp).await {
                                let _ = http.serve_connection(TokioIo::new(stream), svc).await;
                            }
                        }
                        None => {
                            let _ = http.serve_connection(TokioIo::new(tcp), svc).await;
                        }
                    }
                });
            }
        });
        server
    }

    pub fn url(&self) -> String {
        format!("http://{}/jwks.json", self.addr)
    }

    pub fn https_url(&self) -> String {
        format!("https://{}/jwks.json", self.addr)
    }

    pub fn publish(&self, body: String) {
        let mut st = self.state.lock().unwrap();
        st.body = body;
        st.version += 1;
    }

    pub fn set_up(&self, up: bool) {
        self.state.lock().unwrap().up = up;
    }

    pub fn count(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    fn answer(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        let st = self.state.lock().unwrap();
        let etag = format!("\"v{}\"", st.version);
        let mut resp = Response::new(Full::new(Bytes::new()));
        if !st.up {
            *resp.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        } else if req.uri().path() != "/jwks.json" {
            *resp.status_mut() = StatusCode::NOT_FOUND;
        } else if req
            .headers()
            .get(header::IF_NONE_MATCH)
            .is_some_and(|v| v.as_bytes() == etag.as_bytes())
        {
            self.not_modified.fetch_add(1, Ordering::SeqCst);
            *resp.status_mut() = StatusCode::NOT_MODIFIED;
        } else {
            *resp.body_mut() = Full::new(Bytes::from(st.body.clone()));
            resp.headers_mut()
                .insert(header::ETAG, etag.parse().unwrap());
        }
        resp
    }
}
