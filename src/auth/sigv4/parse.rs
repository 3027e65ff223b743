//! Reading the signature fields of either form (the `Authorization` header, or the
//! presigned query) and the request date.

use http::HeaderMap;

use super::canonical::{self, ALGORITHM};
use super::{has_auth_header, has_presign_params, Form, SignedRequest, Sigv4Error, AMZ_DATE};

/// The parsed signature fields of either form.
pub(super) struct Auth<'a> {
    pub form: Form,
    /// "AKID/YYYYMMDD/region/service/aws4_request"
    pub credential: std::borrow::Cow<'a, str>,
    pub signed_headers: std::borrow::Cow<'a, str>,
    pub signature: std::borrow::Cow<'a, str>,
    /// Presigned: X-Amz-Date and X-Amz-Expires, X-Amz-Security-Token.
    pub date: Option<String>,
    pub expires: Option<String>,
    pub token: Option<String>,
}

pub(super) fn parse_auth<'a>(req: &SignedRequest<'a>) -> Result<Auth<'a>, Sigv4Error> {
    use std::borrow::Cow;
    let header = has_auth_header(req.headers);
    let presigned = has_presign_params(req.query);
    match (header, presigned) {
        (true, true) => Err(Sigv4Error::MixedForms),
        (false, false) => Err(Sigv4Error::Missing),
        (true, false) => {
            let v = req
                .headers
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .ok_or(Sigv4Error::Malformed("sigv4_bad_authorization"))?;
            let rest = v[ALGORITHM.len()..]
                .strip_prefix(' ')
                .ok_or(Sigv4Error::Malformed("sigv4_bad_authorization"))?;
            let (mut cred, mut sh, mut sig) = (None, None, None);
            for field in rest.split(',') {
                let (k, val) = field
                    .trim()
                    .split_once('=')
                    .ok_or(Sigv4Error::Malformed("sigv4_bad_authorization"))?;
                let slot = match k {
                    "Credential" => &mut cred,
                    "SignedHeaders" => &mut sh,
                    "Signature" => &mut sig,
                    _ => return Err(Sigv4Error::Malformed("sigv4_bad_authorization")),
                };
                if slot.replace(val).is_some() {
                    return Err(Sigv4Error::Malformed("sigv4_bad_authorization"));
                }
            }
            match (cred, sh, sig) {
                (Some(c), Some(h), Some(s)) => Ok(Auth {
                    form: Form::Header,
                    credential: Cow::Borrowed(c),
                    signed_headers: Cow::Borrowed(h),
                    signature: Cow::Borrowed(s),
                    date: None,
                    expires: None,
                    token: None,
                }),
                _ => Err(Sigv4Error::Malformed("sigv4_incomplete")),
            }
        }
        (false, true) => {
            let mut fields: [Option<String>; 7] = Default::default();
            const NAMES: [&str; 7] = [
                "X-Amz-Algorithm",
                "X-Amz-Credential",
                "X-Amz-Date",
                "X-Amz-Expires",
                "X-Amz-SignedHeaders",
                "X-Amz-Signature",
                "X-Amz-Security-Token",
            ];
            for p in req.query.split('&') {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                if let Some(i) = NAMES.iter().position(|n| *n == k) {
                    let v = String::from_utf8(canonical::percent_decode(v))
                        .map_err(|_| Sigv4Error::Malformed("sigv4_bad_query"))?;
                    if fields[i].replace(v).is_some() {
                        return Err(Sigv4Error::Malformed("sigv4_bad_query"));
                    }
                }
            }
            let [alg, cred, date, expires, sh, sig, token] = fields;
            if alg.as_deref() != Some(ALGORITHM) {
                return Err(Sigv4Error::Malformed("sigv4_bad_algorithm"));
            }
            match (cred, date, expires, sh, sig) {
                (Some(c), Some(d), Some(e), Some(h), Some(s)) => Ok(Auth {
                    form: Form::Presigned,
                    credential: Cow::Owned(c),
                    signed_headers: Cow::Owned(h),
                    signature: Cow::Owned(s),
                    date: Some(d),
                    expires: Some(e),
                    token,
                }),
                _ => Err(Sigv4Error::Malformed("sigv4_incomplete")),
            }
        }
    }
}

/// The header form's date: `x-amz-date` (ISO 8601 basic) or else `date` (same, or an HTTP
/// date). Returns the ISO 8601 basic text used in the string to sign, and its Unix time.
pub(super) fn header_date(
    headers: &HeaderMap,
) -> Result<(std::borrow::Cow<'_, str>, i64), Sigv4Error> {
    use std::borrow::Cow;
    if let Some(v) = headers.get(AMZ_DATE) {
        let s = v.to_str().map_err(|_| Sigv4Error::BadDate)?;
        let t = parse_amz_date(s).ok_or(Sigv4Error::BadDate)?;
        return Ok((Cow::Borrowed(s), t));
    }
    let v = headers.get(http::header::DATE).ok_or(Sigv4Error::BadDate)?;
    let s = v.to_str().map_err(|_| Sigv4Error::BadDate)?;
    if let Some(t) = parse_amz_date(s) {
        return Ok((Cow::Borrowed(s), t));
    }
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc2822)
        .map_err(|_| Sigv4Error::BadDate)?;
    let t = t.to_offset(time::UtcOffset::UTC);
    let text = format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    Ok((Cow::Owned(text), t.unix_timestamp()))
}

/// `YYYYMMDDTHHMMSSZ` → Unix seconds.
pub fn parse_amz_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let t = s.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    let month = time::Month::try_from(u8::try_from(num(4..6)?).ok()?).ok()?;
    let date = time::Date::from_calendar_date(
        i32::try_from(num(0..4)?).ok()?,
        month,
        u8::try_from(num(6..8)?).ok()?,
    )
    .ok()?;
    let tm = time::Time::from_hms(
        u8::try_from(num(9..11)?).ok()?,
        u8::try_from(num(11..13)?).ok()?,
        u8::try_from(num(13..15)?).ok()?,
    )
    .ok()?;
    Some(
        time::PrimitiveDateTime::new(date, tm)
            .assume_utc()
            .unix_timestamp(),
    )
}
