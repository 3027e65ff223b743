//! `[[listener]]`: one TLS listener (address, certificate, client auth, TLS version, its
//! connection limits and request rules), raw struct → [`ListenerConfig`].

use super::build::{k, Builder, KeyPath, Seg};
use super::defaults as d;
use super::file;
use super::units::parse_duration;
use super::{
    Cidr, ClientAuth, KeyPermissions, ListenerConfig, ListenerLimits, PathParameters, RequestRules,
    TlsVersion, UnderscoreHeaders,
};

impl Builder {
    pub(super) fn listener(&mut self, p: &[Seg], l: &file::RawListener) -> ListenerConfig {
        let address = self.socket_addr(p, &l.address);
        let cert = self.path(p, "cert", &l.cert);
        let key = self.path(p, "key", &l.key);
        let client_auth = self.choice(
            k(p, "client_auth"),
            &l.client_auth,
            d::CLIENT_AUTH,
            &[
                ("required", ClientAuth::Required),
                ("optional", ClientAuth::Optional),
                ("none", ClientAuth::None),
            ],
        );
        let min_tls_version = self.choice(
            k(p, "min_tls_version"),
            &l.min_tls_version,
            d::MIN_TLS_VERSION,
            &[("1.2", TlsVersion::V1_2), ("1.3", TlsVersion::V1_3)],
        );
        let key_permissions = self.choice(
            k(p, "key_permissions"),
            &l.key_permissions,
            d::KEY_PERMISSIONS,
            &[
                ("strict", KeyPermissions::Strict),
                ("warn", KeyPermissions::Warn),
            ],
        );
        let max_connections = l.max_connections.unwrap_or(d::MAX_CONNECTIONS);
        if max_connections == 0 {
            self.err(k(p, "max_connections"), "must be at least 1");
        }
        let h2_max_concurrent_streams = l
            .h2_max_concurrent_streams
            .unwrap_or(d::H2_MAX_CONCURRENT_STREAMS);
        if h2_max_concurrent_streams == 0 {
            self.err(k(p, "h2_max_concurrent_streams"), "must be at least 1");
        }
        let h2_max_header_list_size = self.size(
            k(p, "h2_max_header_list_size"),
            &l.h2_max_header_list_size,
            d::H2_MAX_HEADER_LIST_SIZE,
            1024,
        );
        let h2_max_header_list_size = u32::try_from(h2_max_header_list_size).unwrap_or_else(|_| {
            self.err(k(p, "h2_max_header_list_size"), "must be below 4GiB");
            d::H2_MAX_HEADER_LIST_SIZE as u32
        });
        let requests = RequestRules {
            headers_with_underscores: self.choice(
                k(p, "headers_with_underscores"),
                &l.headers_with_underscores,
                d::HEADERS_WITH_UNDERSCORES,
                &[
                    ("drop", UnderscoreHeaders::Drop),
                    ("reject", UnderscoreHeaders::Reject),
                    ("allow", UnderscoreHeaders::Allow),
                ],
            ),
            path_parameters: self.choice(
                k(p, "path_parameters"),
                &l.path_parameters,
                d::PATH_PARAMETERS,
                &[
                    ("reject", PathParameters::Reject),
                    ("allow", PathParameters::Allow),
                ],
            ),
        };
        let mut trusted_proxies = Vec::new();
        for (i, s) in l.trusted_proxies.iter().flatten().enumerate() {
            match Cidr::parse(s) {
                Ok(c) => trusted_proxies.push(c),
                Err(e) => self.err(super::build::ix(&k(p, "trusted_proxies"), i), e),
            }
        }
        ListenerConfig {
            address,
            cert,
            key,
            client_auth,
            min_tls_version,
            key_permissions,
            workers: l.workers.unwrap_or(d::WORKERS),
            limits: ListenerLimits {
                handshake_timeout: self.duration(
                    k(p, "handshake_timeout"),
                    &l.handshake_timeout,
                    d::HANDSHAKE_TIMEOUT,
                ),
                header_read_timeout: self.duration(
                    k(p, "header_read_timeout"),
                    &l.header_read_timeout,
                    d::HEADER_READ_TIMEOUT,
                ),
                idle_timeout: self.duration(k(p, "idle_timeout"), &l.idle_timeout, d::IDLE_TIMEOUT),
                max_header_size: self.size(
                    k(p, "max_header_size"),
                    &l.max_header_size,
                    d::MAX_HEADER_SIZE,
                    d::MIN_HEADER_SIZE,
                ) as usize,
                max_connections: max_connections.max(1),
                h2_max_concurrent_streams: h2_max_concurrent_streams.max(1),
                h2_max_header_list_size,
                drain_timeout: self.duration(
                    k(p, "drain_timeout"),
                    &l.drain_timeout,
                    d::DRAIN_TIMEOUT,
                ),
                drain_delay: self.drain_delay(k(p, "drain_delay"), &l.drain_delay),
                requests,
                trusted_proxies,
            },
        }
    }
}

impl Builder {
    /// `drain_delay`: a duration, and unlike the timeouts zero is allowed (and the default).
    fn drain_delay(&mut self, path: KeyPath, v: &Option<String>) -> std::time::Duration {
        let Some(s) = v else {
            return d::DRAIN_DELAY;
        };
        parse_duration(s).unwrap_or_else(|e| {
            self.err(path, e);
            d::DRAIN_DELAY
        })
    }
}
