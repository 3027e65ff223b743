//! The whole file: each section built in turn, then the checks that span sections (no two
//! listeners or the admin endpoint on one address, upstream names unique, `sigv4` routes
//! need `[auth.sigv4]`). `[admin]`, a single address, is built here too. A missing
//! section is reported at its key (`listener`, `truststore`, ...), as every problem names
//! a line or a key.

use std::collections::HashSet;
use std::path::PathBuf;

use super::build::{ix, k, Builder, Seg};
use super::file::RawConfig;
use super::{AdminConfig, AuthMethod, Config, ListenerConfig, RouteConfig, UpstreamConfig};

impl Builder {
    pub(super) fn config(&mut self, raw: RawConfig, source: PathBuf) -> Config {
        if raw.listener.is_empty() {
            self.err(
                vec![Seg::Key("listener".into())],
                "at least one [[listener]] is required",
            );
        }
        let listeners: Vec<ListenerConfig> = raw
            .listener
            .iter()
            .enumerate()
            .map(|(i, l)| self.listener(&ix(&[Seg::Key("listener".into())], i), l))
            .collect();
        let mut seen = HashSet::new();
        for (i, l) in listeners.iter().enumerate() {
            if l.address.port() != 0 && !seen.insert(l.address) {
                self.err(
                    k(&ix(&[Seg::Key("listener".into())], i), "address"),
                    format!("{} is used by another listener", l.address),
                );
            }
        }

        let truststore = match &raw.truststore {
            Some(t) => self.truststore(t),
            None => {
                self.err(
                    vec![Seg::Key("truststore".into())],
                    "the [truststore] section is required",
                );
                self.truststore(&Default::default())
            }
        };
        let admin = raw.admin.as_ref().map(|a| AdminConfig {
            address: self.socket_addr(&[Seg::Key("admin".into())], &a.address),
        });
        if let Some(a) = &admin {
            if a.address.port() != 0 && listeners.iter().any(|l| l.address == a.address) {
                self.err(
                    vec![Seg::Key("admin".into()), Seg::Key("address".into())],
                    format!("{} is also a listener's address", a.address),
                );
            }
        }

        if raw.upstream.is_empty() {
            self.err(
                vec![Seg::Key("upstream".into())],
                "at least one [[upstream]] is required",
            );
        }
        let upstreams: Vec<UpstreamConfig> = raw
            .upstream
            .iter()
            .enumerate()
            .map(|(i, u)| self.upstream(&ix(&[Seg::Key("upstream".into())], i), u))
            .collect();
        let mut names = HashSet::new();
        for (i, u) in upstreams.iter().enumerate() {
            if !u.name.is_empty() && !names.insert(u.name.clone()) {
                self.err(
                    k(&ix(&[Seg::Key("upstream".into())], i), "name"),
                    format!("another upstream is already named `{}`", u.name),
                );
            }
        }

        if raw.route.is_empty() {
            self.err(
                vec![Seg::Key("route".into())],
                "at least one [[route]] is required",
            );
        }
        let oauth2 = self.issuer(raw.issuer.as_ref());
        self.check_issuer_builtins(&upstreams, oauth2.as_ref());
        let sessions = self.sessions(
            raw.issuer.as_ref().and_then(|i| i.sessions.as_ref()),
            &truststore,
        );
        let jwt = self.jwt_providers(
            raw.auth.as_ref(),
            oauth2.as_ref().map(|o| o.issuer.as_str()),
        );
        let routes: Vec<RouteConfig> = raw
            .route
            .iter()
            .enumerate()
            .map(|(i, r)| self.route(&ix(&[Seg::Key("route".into())], i), r, &upstreams, &jwt))
            .collect();
        self.check_route_overlaps(&routes);

        let log = self.log(raw.log.as_ref().unwrap_or(&Default::default()));
        let runtime = self.runtime(raw.runtime.as_ref().unwrap_or(&Default::default()));
        let reload = self.reload(raw.reload.as_ref());
        let identity_cache = self.identity_cache(raw.identity_cache.as_ref());
        let sigv4 = raw
            .auth
            .as_ref()
            .and_then(|a| a.sigv4.as_ref())
            .map(|s| self.sigv4(s));
        self.check_sessions(
            &upstreams,
            sessions.as_ref(),
            oauth2.as_ref(),
            sigv4.as_ref().is_some_and(|s| s.sessions),
        );
        if sigv4.is_none() {
            for (i, r) in routes.iter().enumerate() {
                if r.auth
                    .iter()
                    .chain(r.auth_any.iter().flatten())
                    .any(|a| *a == AuthMethod::Sigv4)
                {
                    self.err(
                        ix(&[Seg::Key("route".into())], i),
                        "this route uses \"sigv4\" but there is no [auth.sigv4] section",
                    );
                }
            }
        }
        let cluster = self.cluster(raw.cluster.as_ref());
        Config {
            source,
            listeners,
            truststore,
            admin,
            upstreams,
            routes,
            log,
            reload,
            identity_cache,
            jwt,
            sigv4,
            oauth2,
            sessions,
            runtime,
            cluster,
        }
    }
}
