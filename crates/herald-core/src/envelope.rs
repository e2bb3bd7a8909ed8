//! The JSON payload envelope sent to endpoints, and byte truncation helpers.
//!
//! The envelope is written as a string directly so that the caller's payload
//! JSON is embedded verbatim (no re-parse, no key reordering).

use crate::time::format_rfc3339_ms;

/// Builds `{"id":..,"type":..,"timestamp":"<RFC 3339 ms>","data":<payload>}`.
///
/// `payload_json` is inserted verbatim and must already be valid JSON; it is
/// not parsed again.
pub fn event_envelope(
    event_id: &str,
    event_type: &str,
    timestamp_ms: i64,
    payload_json: &str,
) -> String {
    let id = json_string(event_id);
    let ty = json_string(event_type);
    let ts = format_rfc3339_ms(timestamp_ms);
    let mut out = String::with_capacity(id.len() + ty.len() + ts.len() + payload_json.len() + 48);
    out.push_str("{\"id\":");
    out.push_str(&id);
    out.push_str(",\"type\":");
    out.push_str(&ty);
    out.push_str(",\"timestamp\":\"");
    out.push_str(&ts);
    out.push_str("\",\"data\":");
    out.push_str(payload_json);
    out.push('}');
    out
}

/// Encodes a string as a JSON string literal.
fn json_string(s: &str) -> String {
    // Serializing a `str` cannot fail.
    serde_json::to_string(s).unwrap_or_else(|_| String::from("\"\""))
}

/// The first `max` bytes of `s` as a string, cut back to a character
/// boundary if the cut would split a character. Invalid UTF-8 is replaced
/// with U+FFFD, so the result may be slightly longer than `max` bytes in
/// that case.
pub fn truncate_utf8(s: &[u8], max: usize) -> String {
    let mut end = max.min(s.len());
    if end < s.len() {
        // Find the start of the last character within the kept prefix; if it
        // is a valid multi-byte sequence that extends past `end`, drop it.
        for i in (end.saturating_sub(3)..end).rev() {
            let b = s[i];
            if b & 0xC0 == 0x80 {
                continue; // continuation byte
            }
            let need = match b {
                0xC0..=0xDF => 2,
                0xE0..=0xEF => 3,
                0xF0..=0xF7 => 4,
                _ => 1,
            };
            let full = &s[i..(i + need).min(s.len())];
            if i + need > end && std::str::from_utf8(full).is_ok() {
                end = i;
            }
            break;
        }
    }
    String::from_utf8_lossy(&s[..end]).into_owned()
}

/// [`truncate_utf8`], with NUL characters (which PostgreSQL cannot store in text) turned into U+FFFD, so
/// whatever a peer answered can be written to any store.
pub fn storable_text(s: &[u8], max: usize) -> String {
    let text = truncate_utf8(s, max);
    if text.contains('\0') {
        text.replace('\0', "\u{FFFD}")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn storable_text_has_no_nul_and_no_invalid_utf8() {
        let text = storable_text(b"ok\0\xff\xfe tail", 64);
        assert!(!text.contains('\0'));
        assert_eq!(text, "ok\u{FFFD}\u{FFFD}\u{FFFD} tail");
        assert_eq!(storable_text(b"plain", 3), "pla");
    }

    #[test]
    fn envelope_is_valid_json() {
        let payloads = [
            r#"{"amount": 10, "z": 1, "a": [1, 2]}"#,
            "null",
            "\"text\"",
            "[1,2,3]",
            "42",
        ];
        for payload in payloads {
            let out = event_envelope("evt_01", "invoice.paid", 1_614_265_330_123, payload);
            let v: Value = serde_json::from_str(&out).unwrap();
            assert_eq!(v["id"], "evt_01");
            assert_eq!(v["type"], "invoice.paid");
            assert_eq!(v["timestamp"], "2021-02-25T15:02:10.123Z");
            assert_eq!(v["data"], serde_json::from_str::<Value>(payload).unwrap());
            assert!(
                out.ends_with(&format!("\"data\":{payload}}}")),
                "verbatim: {out}"
            );
        }
    }

    #[test]
    fn envelope_escapes_id_and_type() {
        let out = event_envelope("a\"b\\c", "x\ny", 0, "{}");
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            v,
            json!({"id": "a\"b\\c", "type": "x\ny", "timestamp": "1970-01-01T00:00:00.000Z", "data": {}})
        );
    }

    #[test]
    fn truncation() {
        let cases: &[(&[u8], usize, &str)] = &[
            (b"hello", 10, "hello"),
            (b"hello", 5, "hello"),
            (b"hello", 3, "hel"),
            (b"hello", 0, ""),
            ("h\u{e9}llo".as_bytes(), 2, "h"),
            ("h\u{e9}llo".as_bytes(), 3, "h\u{e9}"),
            ("\u{20ac}x".as_bytes(), 1, ""),
            ("\u{20ac}x".as_bytes(), 2, ""),
            ("\u{20ac}x".as_bytes(), 3, "\u{20ac}"),
            ("a\u{1f600}".as_bytes(), 4, "a"),
            ("a\u{1f600}".as_bytes(), 5, "a\u{1f600}"),
            (b"ab\xffcd", 4, "ab\u{fffd}c"),
            (b"ab\xe2\x82", 10, "ab\u{fffd}"),
            (b"ab\xe2\x82zz", 4, "ab\u{fffd}"),
        ];
        for (input, max, want) in cases {
            assert_eq!(truncate_utf8(input, *max), *want, "{input:?} {max}");
        }
        let big = "\u{e9}".repeat(3000);
        let t = truncate_utf8(big.as_bytes(), 4096);
        assert_eq!(t.len(), 4096);
        let t = truncate_utf8(big.as_bytes(), 4095);
        assert_eq!(t.len(), 4094);
    }
}
