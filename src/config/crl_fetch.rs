//! `[[truststore.crl_fetch]]`: CRLs fetched from URLs in the background (raw struct, typed
//! config and builder).

use std::time::Duration;

use serde::Deserialize;

use super::build::{ix, k, Builder, Seg};
use super::defaults as d;

#[derive(Debug, Default, Deserialize)]
pub struct RawCrlFetch {
    pub url: Option<String>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
}

/// One CRL source, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlFetchConfig {
    /// An `http://` URL (RFC 5280 distribution points are plain http: the CRL is signed).
    pub url: String,
    /// Time between conditional fetches.
    pub interval: Duration,
    /// For one whole fetch (connect, request, body).
    pub timeout: Duration,
}

impl Builder {
    pub(super) fn crl_fetch(&mut self, raw: &[RawCrlFetch]) -> Vec<CrlFetchConfig> {
        let base = [Seg::Key("truststore".into()), Seg::Key("crl_fetch".into())];
        let mut out: Vec<CrlFetchConfig> = Vec::with_capacity(raw.len());
        for (i, r) in raw.iter().enumerate() {
            let p = ix(&base, i);
            let url = self
                .required(&p, "url", &r.url)
                .unwrap_or_default()
                .to_owned();
            if !url.is_empty() {
                if let Err(why) = check_url(&url) {
                    self.err(k(&p, "url"), why);
                } else if out.iter().any(|c| c.url == url) {
                    self.err(k(&p, "url"), format!("\"{url}\" is listed twice"));
                }
            }
            let interval = self.duration(k(&p, "interval"), &r.interval, d::CRL_FETCH_INTERVAL);
            if interval < d::CRL_FETCH_MIN_INTERVAL {
                self.err(
                    k(&p, "interval"),
                    format!(
                        "must be at least {}",
                        humantime::format_duration(d::CRL_FETCH_MIN_INTERVAL)
                    ),
                );
            }
            let timeout = self.duration(k(&p, "timeout"), &r.timeout, d::CRL_FETCH_TIMEOUT);
            out.push(CrlFetchConfig {
                url,
                interval: interval.max(d::CRL_FETCH_MIN_INTERVAL),
                timeout,
            });
        }
        out
    }
}

fn check_url(url: &str) -> Result<(), String> {
    let uri: http::Uri = url.parse().map_err(|_| format!("\"{url}\" is not a URL"))?;
    match uri.scheme_str() {
        Some("http") if uri.host().is_some_and(|h| !h.is_empty()) => Ok(()),
        Some("http") => Err(format!("\"{url}\" has no host")),
        Some(s) => Err(format!(
            "\"{url}\": only http:// URLs are fetched (a CRL is signed by its CA, which is what \
             RFC 5280 distribution points rely on); the scheme \"{s}\" is not supported"
        )),
        None => Err(format!("\"{url}\" must be an http:// URL")),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::{parse, Config, ConfigError};

    fn cfg(extra: &str) -> Result<Config, ConfigError> {
        let text = format!(
            r#"
[[listener]]
address = "127.0.0.1:8443"
cert = "server.pem"
key = "server.key"

[truststore]
dir = "ts"
{extra}

[[upstream]]
name = "echo"
builtin = "echo"

[[route]]
name = "all"
upstream = "echo"
"#
        );
        parse(&text, Path::new("/etc/portcullis/portcullis.toml"))
    }

    fn problems(extra: &str) -> String {
        let e = cfg(extra).unwrap_err();
        e.problems
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn defaults_and_values() {
        let c = cfg("").unwrap();
        assert!(c.truststore.crl_fetch.is_empty());
        let c = cfg(
            "[[truststore.crl_fetch]]\nurl = \"http://pki.example/a.crl\"\n\
             [[truststore.crl_fetch]]\nurl = \"http://127.0.0.1:8080/b.crl\"\ninterval = \"30s\"\ntimeout = \"2s\"",
        )
        .unwrap();
        let f = &c.truststore.crl_fetch;
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].interval, crate::config::defaults::CRL_FETCH_INTERVAL);
        assert_eq!(f[0].timeout, crate::config::defaults::CRL_FETCH_TIMEOUT);
        assert_eq!(f[1].url, "http://127.0.0.1:8080/b.crl");
        assert_eq!(f[1].interval.as_secs(), 30);
        assert_eq!(f[1].timeout.as_secs(), 2);
    }

    #[test]
    fn bad_entries_name_the_key() {
        let p = problems("[[truststore.crl_fetch]]\nurl = \"https://pki.example/a.crl\"");
        assert!(p.contains("truststore.crl_fetch[0].url"), "{p}");
        assert!(p.contains("only http://"), "{p}");
        let p = problems("[[truststore.crl_fetch]]\ninterval = \"5m\"");
        assert!(p.contains("missing required key `url`"), "{p}");
        let p = problems("[[truststore.crl_fetch]]\nurl = \"http://a/x\"\ninterval = \"1ms\"");
        assert!(p.contains("truststore.crl_fetch[0].interval"), "{p}");
        let p = problems(
            "[[truststore.crl_fetch]]\nurl = \"http://a/x\"\n[[truststore.crl_fetch]]\nurl = \"http://a/x\"",
        );
        assert!(p.contains("listed twice"), "{p}");
        let p = problems("[[truststore.crl_fetch]]\nurl = \"http://a/x\"\nintervall = \"5m\"");
        assert!(p.contains("did you mean `interval`"), "{p}");
        let p = problems("[[truststore.crl_fetch]]\nurl = \"not a url\"");
        assert!(p.contains("is not a URL"), "{p}");
    }
}
