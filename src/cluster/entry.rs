//! One revocation as Redis holds it: a member of the store's sorted set (JSON text; the
//! score is the Unix time after which it may go), and the message published to the others.
//! Everything read from Redis is checked here before it is applied: a value that does not
//! parse, or that would revoke for longer than any credential lives, is refused.

use serde::{Deserialize, Serialize};

/// The longest a revocation from Redis may be kept (no token or session lives longer).
pub const MAX_KEEP_SECS: i64 = 31 * 24 * 3600;
/// The longest member accepted (ids and subjects are short).
const MAX_MEMBER_BYTES: usize = 1024;
const MAX_NAME_CHARS: usize = 512;

/// What is revoked.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Revocation {
    /// One credential id (a token's `jti`, a session's access key id).
    Id(String),
    /// Every credential of `subject` issued at or before `before` (Unix time).
    Subject { subject: String, before: i64 },
}

/// A revocation and how long it is kept.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Entry {
    pub what: Revocation,
    /// Unix time after which every credential it covers has expired.
    pub until: i64,
}

/// The member text: `{"id":"…"}` or `{"subject":"…","before":N}`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Member {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    before: Option<i64>,
}

/// What is published on the channel: the store, the member, its score.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Message {
    pub store: String,
    pub member: String,
    pub until: i64,
}

impl Entry {
    pub fn member(&self) -> String {
        let m = match &self.what {
            Revocation::Id(id) => Member {
                id: Some(id.clone()),
                subject: None,
                before: None,
            },
            Revocation::Subject { subject, before } => Member {
                id: None,
                subject: Some(subject.clone()),
                before: Some(*before),
            },
        };
        // Serialising a struct of strings and integers cannot fail.
        serde_json::to_string(&m).unwrap_or_default()
    }

    /// An entry read from Redis (a set member and its score), checked: `Ok(None)` for one
    /// that has expired already, `Err` (the reason, for the log line) for garbage.
    pub fn from_redis(member: &[u8], score: f64, now: i64) -> Result<Option<Entry>, String> {
        if member.len() > MAX_MEMBER_BYTES {
            return Err(format!("a member of {} bytes", member.len()));
        }
        let m: Member = serde_json::from_slice(member)
            .map_err(|_| "a member that is not a revocation".to_owned())?;
        if !score.is_finite() || score.fract() != 0.0 {
            return Err(format!("a score that is not a Unix time ({score})"));
        }
        let until = score as i64;
        if until <= now {
            return Ok(None);
        }
        if until > now + MAX_KEEP_SECS {
            return Err(format!(
                "an expiry {}s away (credentials live {}s at most)",
                until - now,
                MAX_KEEP_SECS
            ));
        }
        let name = |s: String| {
            let ok = !s.is_empty()
                && s.chars().count() <= MAX_NAME_CHARS
                && !s.chars().any(char::is_control);
            ok.then_some(s)
                .ok_or_else(|| "an empty, over-long or control-character name".to_owned())
        };
        let what = match (m.id, m.subject, m.before) {
            (Some(id), None, None) => Revocation::Id(name(id)?),
            (None, Some(subject), Some(before)) if before > 0 && before <= until => {
                Revocation::Subject {
                    subject: name(subject)?,
                    before,
                }
            }
            _ => return Err("a member that is neither {id} nor {subject, before}".to_owned()),
        };
        Ok(Some(Entry { what, until }))
    }
}

impl Message {
    pub fn parse(payload: &[u8]) -> Result<Message, String> {
        if payload.len() > 4 * MAX_MEMBER_BYTES {
            return Err(format!("a message of {} bytes", payload.len()));
        }
        serde_json::from_slice(payload).map_err(|_| "a message that is not a revocation".into())
    }

    pub fn text(&self) -> String {
        // Strings and an integer: cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_round_trip_and_garbage_is_refused() {
        let now = 1_800_000_000;
        for what in [
            Revocation::Id("j1".into()),
            Revocation::Subject {
                subject: "role:ops".into(),
                before: now,
            },
        ] {
            let e = Entry {
                what,
                until: now + 60,
            };
            let back = Entry::from_redis(e.member().as_bytes(), (now + 60) as f64, now);
            assert_eq!(back, Ok(Some(e)));
        }
        assert_eq!(
            Entry::from_redis(br#"{"id":"old"}"#, (now - 1) as f64, now),
            Ok(None)
        );
        for (member, score) in [
            (&b"garbage"[..], now + 60),
            (br#"{"id":""}"#, now + 60),
            (br#"{"id":"a","before":1}"#, now + 60),
            (br#"{"subject":"c"}"#, now + 60),
            (br#"{"subject":"c","before":-5}"#, now + 60),
            (br#"{"id":"a","extra":1}"#, now + 60),
            (br#"{"id":"forever"}"#, now + MAX_KEEP_SECS + 1),
        ] {
            assert!(
                Entry::from_redis(member, score as f64, now).is_err(),
                "{}",
                String::from_utf8_lossy(member)
            );
        }
        assert!(Entry::from_redis(br#"{"id":"a"}"#, f64::NAN, now).is_err());
        assert!(Message::parse(b"{}").is_err());
    }
}
