//! Who the peer is: the identity read once from a verified client certificate ([`cert`]),
//! the per-connection state every request on that connection shares ([`conn`]), and the
//! names of the identity headers sent to backends.
//!
//! A low floor: `tls`, `auth`, `policy`, the access log and the proxy all read these
//! types; this module uses only `telemetry` (a connection's request-metric handles).

pub mod cert;
pub mod conn;

pub use cert::{format_name, serial_hex, Identity, IdentityError};
pub use conn::{
    clock_ms, reads_as, Activity, ConnInfo, ConnTrust, ForwardedIdentity, WireSignals, XFCC,
    X_CLIENT_ACCESS_KEY_ID, X_CLIENT_ATTRIBUTES, X_CLIENT_FINGERPRINT, X_CLIENT_PREFIX,
    X_CLIENT_PRINCIPAL, X_CLIENT_ROLE, X_CLIENT_SESSION, X_CLIENT_SOURCE_IDENTITY,
    X_CLIENT_SUBJECT, X_CLIENT_URI_SAN,
};
