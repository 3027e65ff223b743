//! The three shapes the credentials leave in: `credential_process` JSON, the IMDS
//! security-credentials document and the container credentials document. Times are
//! always `YYYY-MM-DDTHH:MM:SSZ`: botocore parses IMDS's `Expiration` with exactly that
//! format, and a time without a zone crashes its `credential_process` provider.

use serde::Serialize;
use time::OffsetDateTime;

/// Temporary credentials from CreateSession.
#[derive(Clone)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    /// In UTC.
    pub expiration: OffsetDateTime,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("expiration", &aws_time(self.expiration))
            .finish_non_exhaustive()
    }
}

/// `%Y-%m-%dT%H:%M:%SZ` in UTC, no fraction.
pub fn aws_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC).truncate_to_second();
    // RFC 3339 of a UTC time on a whole second: exactly that shape (`Z`, no fraction);
    // a year past 9999 is the only failure, and no credential expires then.
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Process<'a> {
    version: u8,
    access_key_id: &'a str,
    secret_access_key: &'a str,
    session_token: &'a str,
    expiration: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Imds<'a> {
    code: &'static str,
    last_updated: String,
    #[serde(rename = "Type")]
    kind: &'static str,
    access_key_id: &'a str,
    secret_access_key: &'a str,
    token: &'a str,
    expiration: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Container<'a> {
    access_key_id: &'a str,
    secret_access_key: &'a str,
    token: &'a str,
    expiration: String,
}

impl Credentials {
    /// `{"Version":1,"AccessKeyId","SecretAccessKey","SessionToken","Expiration"}`.
    pub fn process_json(&self) -> String {
        to_json(&Process {
            version: 1,
            access_key_id: &self.access_key_id,
            secret_access_key: &self.secret_access_key,
            session_token: &self.session_token,
            expiration: aws_time(self.expiration),
        })
    }

    /// `{"Code":"Success","LastUpdated","Type":"AWS-HMAC","AccessKeyId",…,"Expiration"}`.
    pub fn imds_json(&self, last_updated: OffsetDateTime) -> String {
        to_json(&Imds {
            code: "Success",
            last_updated: aws_time(last_updated),
            kind: "AWS-HMAC",
            access_key_id: &self.access_key_id,
            secret_access_key: &self.secret_access_key,
            token: &self.session_token,
            expiration: aws_time(self.expiration),
        })
    }

    /// `{"AccessKeyId","SecretAccessKey","Token","Expiration"}`.
    pub fn container_json(&self) -> String {
        to_json(&Container {
            access_key_id: &self.access_key_id,
            secret_access_key: &self.secret_access_key,
            token: &self.session_token,
            expiration: aws_time(self.expiration),
        })
    }
}

fn to_json(v: &impl Serialize) -> String {
    // Structs of strings and an integer: serialising them cannot fail.
    serde_json::to_string(v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> Credentials {
        Credentials {
            access_key_id: "ASIAAAAAAAAAAAAAAAAA".into(),
            secret_access_key: "s".into(),
            session_token: "t".into(),
            expiration: OffsetDateTime::from_unix_timestamp(1_796_106_967).unwrap(),
        }
    }

    #[test]
    fn shapes_and_key_order_are_the_contract() {
        let c = creds();
        assert_eq!(
            c.process_json(),
            r#"{"Version":1,"AccessKeyId":"ASIAAAAAAAAAAAAAAAAA","SecretAccessKey":"s","SessionToken":"t","Expiration":"2026-12-01T06:36:07Z"}"#
        );
        let at = OffsetDateTime::from_unix_timestamp(1_796_103_367).unwrap();
        assert_eq!(
            c.imds_json(at),
            r#"{"Code":"Success","LastUpdated":"2026-12-01T05:36:07Z","Type":"AWS-HMAC","AccessKeyId":"ASIAAAAAAAAAAAAAAAAA","SecretAccessKey":"s","Token":"t","Expiration":"2026-12-01T06:36:07Z"}"#
        );
        assert_eq!(
            c.container_json(),
            r#"{"AccessKeyId":"ASIAAAAAAAAAAAAAAAAA","SecretAccessKey":"s","Token":"t","Expiration":"2026-12-01T06:36:07Z"}"#
        );
        assert!(!format!("{c:?}").contains("\"s\""), "no secret in Debug");
    }
}
