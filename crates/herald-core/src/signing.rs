//! Standard Webhooks signatures.
//!
//! A signature is `v1,` followed by the base64 HMAC-SHA256 of
//! `"{msg_id}.{timestamp}.{body}"`, keyed with the endpoint secret. Secrets
//! are written as `whsec_` plus standard base64.

use base64::alphabet::STANDARD as STANDARD_ALPHABET;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;

type HmacSha256 = Hmac<Sha256>;

/// Prefix of serialized secrets.
const PREFIX: &str = "whsec_";
/// Allowed key length range in bytes.
const MIN_LEN: usize = 24;
const MAX_LEN: usize = 64;

/// Standard base64 that accepts input with or without padding.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &STANDARD_ALPHABET,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a secret was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// The text after `whsec_` is not standard base64.
    #[error("secret must be \"whsec_\" followed by standard base64")]
    Encoding,
    /// The decoded key is too short or too long.
    #[error("secret must decode to between 24 and 64 bytes, got {0}")]
    Length(usize),
}

/// An endpoint signing key. Its `Debug` output never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret(<redacted {} bytes>)", self.0.len())
    }
}

impl Secret {
    /// Parses `whsec_<base64>` (or bare base64, as some senders publish it).
    pub fn parse(s: &str) -> Result<Secret, SecretError> {
        let encoded = s.strip_prefix(PREFIX).unwrap_or(s);
        let bytes = LENIENT.decode(encoded).map_err(|_| SecretError::Encoding)?;
        Secret::from_bytes(&bytes)
    }

    /// Wraps raw key bytes (24..=64 bytes).
    pub fn from_bytes(b: &[u8]) -> Result<Secret, SecretError> {
        if (MIN_LEN..=MAX_LEN).contains(&b.len()) {
            Ok(Secret(b.to_vec()))
        } else {
            Err(SecretError::Length(b.len()))
        }
    }

    /// The `whsec_` serialization, with padded standard base64.
    pub fn to_whsec(&self) -> String {
        format!("{PREFIX}{}", STANDARD.encode(&self.0))
    }

    /// The raw key bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

fn mac_for(secret: &Secret, msg_id: &str, timestamp_secs: i64, body: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = HmacSha256::new_from_slice(&secret.0).expect("hmac accepts any key length");
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp_secs.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// Computes the `v1,<base64>` signature of a message.
pub fn sign(secret: &Secret, msg_id: &str, timestamp_secs: i64, body: &[u8]) -> String {
    let tag = mac_for(secret, msg_id, timestamp_secs, body)
        .finalize()
        .into_bytes();
    format!("v1,{}", STANDARD.encode(tag))
}

/// The `webhook-signature` header value: one signature per secret,
/// space-separated (several secrets during key rotation).
pub fn signature_header(
    secrets: &[&Secret],
    msg_id: &str,
    timestamp_secs: i64,
    body: &[u8],
) -> String {
    secrets
        .iter()
        .map(|s| sign(s, msg_id, timestamp_secs, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Why a signature did not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The timestamp is outside the allowed tolerance.
    #[error("webhook timestamp is too far from the current time")]
    Timestamp,
    /// The header is empty or has an entry without a `version,` part.
    #[error("webhook signature header is malformed")]
    Malformed,
    /// No `v1` signature matched.
    #[error("no matching webhook signature")]
    NoMatch,
}

/// Verifies a signature header against one secret. Entries with other
/// versions than `v1` are ignored; comparison is constant-time.
pub fn verify(
    secret: &Secret,
    msg_id: &str,
    timestamp_secs: i64,
    body: &[u8],
    header: &str,
    now_secs: i64,
    tolerance_secs: i64,
) -> Result<(), VerifyError> {
    // A negative tolerance accepts nothing.
    let within = u64::try_from(tolerance_secs)
        .is_ok_and(|tolerance| now_secs.abs_diff(timestamp_secs) <= tolerance);
    if !within {
        return Err(VerifyError::Timestamp);
    }
    let mut entries = header.split_ascii_whitespace().peekable();
    if entries.peek().is_none() {
        return Err(VerifyError::Malformed);
    }
    let mac = mac_for(secret, msg_id, timestamp_secs, body);
    let mut matched = false;
    for entry in entries {
        let (version, sig) = entry.split_once(',').ok_or(VerifyError::Malformed)?;
        if version != "v1" {
            continue;
        }
        if let Ok(raw) = STANDARD.decode(sig) {
            matched |= mac.clone().verify_slice(&raw).is_ok();
        }
    }
    if matched {
        Ok(())
    } else {
        Err(VerifyError::NoMatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const MSG_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: i64 = 1_614_265_330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const EXPECTED: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn secret() -> Secret {
        Secret::parse(SECRET).unwrap()
    }

    #[test]
    fn standard_webhooks_example() {
        assert_eq!(sign(&secret(), MSG_ID, TS, BODY), EXPECTED);
        assert_eq!(
            verify(&secret(), MSG_ID, TS, BODY, EXPECTED, TS, 300),
            Ok(())
        );
    }

    #[test]
    fn secret_parsing() {
        let s = secret();
        assert_eq!(s.as_bytes().len(), 24);
        assert_eq!(s.to_whsec(), SECRET);
        assert_eq!(
            Secret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            Ok(s.clone())
        );
        assert_eq!(Secret::parse(&s.to_whsec()), Ok(s.clone()));
        assert!(!format!("{s:?}").contains("MfKQ"));
        assert_eq!(
            Secret::parse("whsec_not base64!"),
            Err(SecretError::Encoding)
        );
        assert_eq!(Secret::parse("whsec_AAAA"), Err(SecretError::Length(3)));
        assert_eq!(Secret::from_bytes(&[7; 65]), Err(SecretError::Length(65)));
        let long = Secret::from_bytes(&[7; 64]).unwrap();
        assert_eq!(Secret::parse(&long.to_whsec()), Ok(long));
        let unpadded = Secret::from_bytes(&[1; 32]).unwrap();
        let text = unpadded.to_whsec();
        assert_eq!(Secret::parse(text.trim_end_matches('=')), Ok(unpadded));
    }

    #[test]
    fn rotation_header() {
        let old = Secret::from_bytes(&[9; 32]).unwrap();
        let new = secret();
        let header = signature_header(&[&old, &new], MSG_ID, TS, BODY);
        assert_eq!(
            header,
            format!("{} {}", sign(&old, MSG_ID, TS, BODY), EXPECTED)
        );
        assert_eq!(verify(&new, MSG_ID, TS, BODY, &header, TS, 300), Ok(()));
        assert_eq!(verify(&old, MSG_ID, TS, BODY, &header, TS, 300), Ok(()));
        assert_eq!(signature_header(&[], MSG_ID, TS, BODY), "");
    }

    #[test]
    fn verify_failures() {
        let s = secret();
        // (body, header, now, expected)
        type Case<'a> = (&'a [u8], &'a str, i64, Result<(), VerifyError>);
        let cases: &[Case] = &[
            (BODY, EXPECTED, TS + 300, Ok(())),
            (BODY, EXPECTED, TS - 300, Ok(())),
            (
                br#"{"test": 2432232315}"#,
                EXPECTED,
                TS,
                Err(VerifyError::NoMatch),
            ),
            (BODY, EXPECTED, TS + 301, Err(VerifyError::Timestamp)),
            (BODY, EXPECTED, TS - 3600, Err(VerifyError::Timestamp)),
            (BODY, "", TS, Err(VerifyError::Malformed)),
            (BODY, "   ", TS, Err(VerifyError::Malformed)),
            (BODY, "garbage", TS, Err(VerifyError::Malformed)),
            (BODY, "v1,!!!notbase64", TS, Err(VerifyError::NoMatch)),
            (
                BODY,
                "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
                TS,
                Err(VerifyError::NoMatch),
            ),
            (
                BODY,
                "v1a,xxx v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
                TS,
                Ok(()),
            ),
        ];
        for (body, header, now, want) in cases {
            assert_eq!(
                verify(&s, MSG_ID, TS, body, header, *now, 300),
                *want,
                "{header:?} now={now}"
            );
        }
        let other_id = verify(&s, "msg_other", TS, BODY, EXPECTED, TS, 300);
        assert_eq!(other_id, Err(VerifyError::NoMatch));
        assert_eq!(
            verify(&s, MSG_ID, TS, BODY, EXPECTED, TS, -1),
            Err(VerifyError::Timestamp)
        );
    }
}
