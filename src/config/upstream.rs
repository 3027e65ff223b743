//! `[[upstream]]`: where routed requests go (endpoints or a built-in, timeouts, pool,
//! protocol, TLS), raw struct → [`UpstreamConfig`].

use super::build::{ix, k, Builder, Seg};
use super::defaults as d;
use super::file;
use super::{resolve, Builtin, UpstreamConfig, UpstreamProtocol, UpstreamTarget, UpstreamTls};

impl Builder {
    pub(super) fn upstream(&mut self, p: &[Seg], u: &file::RawUpstream) -> UpstreamConfig {
        let name = self
            .required(p, "name", &u.name)
            .unwrap_or_default()
            .to_owned();
        let target = match (&u.endpoints, &u.builtin) {
            (Some(_), Some(_)) => {
                self.err(
                    k(p, "builtin"),
                    "give either `endpoints` or `builtin`, not both",
                );
                UpstreamTarget::Endpoints(Vec::new())
            }
            (None, None) => {
                self.err(
                    p.to_vec(),
                    "needs `endpoints = [\"host:port\", ...]` or `builtin = \"echo\"`",
                );
                UpstreamTarget::Endpoints(Vec::new())
            }
            (None, Some(b)) => match b.as_str() {
                "echo" => UpstreamTarget::Builtin(Builtin::Echo),
                "oauth2" => UpstreamTarget::Builtin(Builtin::Oauth2),
                "rolesanywhere" => UpstreamTarget::Builtin(Builtin::Rolesanywhere),
                _ => {
                    self.err(
                        k(p, "builtin"),
                        format!("\"{b}\" is not a built-in upstream (there are \"echo\", \"oauth2\" and \"rolesanywhere\")"),
                    );
                    UpstreamTarget::Builtin(Builtin::Echo)
                }
            },
            (Some(eps), None) => {
                if eps.is_empty() {
                    self.err(k(p, "endpoints"), "must list at least one \"host:port\"");
                }
                for (i, ep) in eps.iter().enumerate() {
                    if let Err(why) = check_endpoint(ep) {
                        self.err(ix(&k(p, "endpoints"), i), why);
                    }
                }
                UpstreamTarget::Endpoints(eps.clone())
            }
        };
        let tls = u.tls.as_ref().map(|t| {
            let tp = k(p, "tls");
            if matches!(target, UpstreamTarget::Builtin(_)) {
                self.err(tp.clone(), "a built-in upstream has no TLS");
            }
            if t.cert.is_some() != t.key.is_some() {
                self.err(
                    tp.clone(),
                    "`cert` and `key` go together: give both for mTLS to the upstream, or neither",
                );
            }
            UpstreamTls {
                ca: self.path(&tp, "ca", &t.ca),
                cert: t.cert.as_deref().map(|c| resolve(&self.base, c)),
                key: t.key.as_deref().map(|c| resolve(&self.base, c)),
                server_name: t.server_name.clone(),
            }
        });
        UpstreamConfig {
            name,
            target,
            connect_timeout: self.duration(
                k(p, "connect_timeout"),
                &u.connect_timeout,
                d::CONNECT_TIMEOUT,
            ),
            request_timeout: self.duration(
                k(p, "request_timeout"),
                &u.request_timeout,
                d::REQUEST_TIMEOUT,
            ),
            max_idle_per_endpoint: u.max_idle_per_endpoint.unwrap_or(d::MAX_IDLE_PER_ENDPOINT),
            idle_timeout: self.duration(
                k(p, "idle_timeout"),
                &u.idle_timeout,
                d::UPSTREAM_IDLE_TIMEOUT,
            ),
            protocol: self.choice(
                k(p, "protocol"),
                &u.protocol,
                d::PROTOCOL,
                &[
                    ("http1", UpstreamProtocol::Http1),
                    ("http2", UpstreamProtocol::Http2),
                ],
            ),
            tls,
        }
    }
}

fn check_endpoint(ep: &str) -> Result<(), String> {
    let bad = || {
        format!("\"{ep}\" is not \"host:port\" (e.g. \"127.0.0.1:8080\" or \"orders.internal:80\")")
    };
    let auth: http::uri::Authority = ep.parse().map_err(|_| bad())?;
    if auth.as_str().contains('@') || auth.host().is_empty() {
        return Err(bad());
    }
    match auth.port_u16() {
        Some(0) | None => Err(bad()),
        Some(_) => Ok(()),
    }
}
