//! Built-in upstreams: services the gateway answers itself, in process, where a pooled
//! connection would otherwise carry the request (`[[upstream]] builtin = "..."`).
//!
//! The forward phase ([`crate::proxy::pipeline`]) calls [`Builtin::serve`] with the request
//! exactly as a backend would receive it (path normalised, identity headers set), the
//! connection it came on and the request's checked host ([`Call::host`]). A builtin has no endpoint, pool or upstream timeout; it fails a
//! request with a [`GatewayError`] like any phase.
//!
//! Adding one: a file here with an `async fn` that takes the request (and whatever of
//! [`Call`] it needs), a variant of [`Builtin`] and of `config::Builtin`, and one arm in
//! each `match` below. `oauth2` is the HTTP face of `[issuer.oauth2]`, `rolesanywhere`
//! (CreateSession) that of `[issuer.sessions]`.

pub mod echo;
pub mod oauth2;
pub mod rolesanywhere;

use std::sync::Arc;

use http::{HeaderValue, Request, Response};

use crate::body::ProxyBody;
use crate::config;
use crate::error::GatewayError;
use crate::identity::ConnInfo;
use crate::issuer::oauth2::Issuer;
use crate::issuer::sessions::Sessions;

/// One built-in service, ready to serve.
#[derive(Debug)]
pub enum Builtin {
    /// A JSON description of the request it received (the quick start, tests).
    Echo,
    /// The endpoints of `[issuer.oauth2]`.
    Oauth2,
    /// CreateSession of `[issuer.sessions]`.
    Rolesanywhere,
}

/// What a builtin may read besides the request: the connection it arrived on (its peer
/// address and verified client certificate), and the issuers that serve through builtins.
pub struct Call<'a> {
    pub conn: &'a ConnInfo,
    /// The request's host as the check phase read it (`Host`, or the HTTP/2 `:authority`
    /// or absolute-form target that wins over it), the host the `sigv4` method verifies
    /// against; `None` only for HTTP/1.0 without one. (The `Host` header the forward phase
    /// writes says the same, but a signature check takes it from here, not from a rewrite.)
    pub host: Option<&'a HeaderValue>,
    pub issuer: Option<&'a Arc<Issuer>>,
    pub sessions: Option<&'a Arc<Sessions>>,
    /// The trust anchors of the truststore generation serving now.
    pub anchors: &'a crate::tls::Anchors,
}

impl Builtin {
    pub fn from_config(b: config::Builtin) -> Builtin {
        match b {
            config::Builtin::Echo => Builtin::Echo,
            config::Builtin::Oauth2 => Builtin::Oauth2,
            config::Builtin::Rolesanywhere => Builtin::Rolesanywhere,
        }
    }

    pub async fn serve(
        &self,
        req: Request<ProxyBody>,
        call: &Call<'_>,
    ) -> Result<Response<ProxyBody>, GatewayError> {
        match self {
            Builtin::Echo => echo::respond(req).await,
            Builtin::Oauth2 => oauth2::respond(req, call).await,
            Builtin::Rolesanywhere => rolesanywhere::respond(req, call).await,
        }
    }
}
