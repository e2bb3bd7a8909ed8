//! Time-sortable identifiers.
//!
//! An id looks like `{prefix}_{26 chars}` where the 26 characters are the
//! Crockford base32 encoding of a 128-bit value made of a 48-bit millisecond
//! timestamp followed by 80 random bits. Ids with the same prefix sort
//! lexicographically in the same order as their numeric value.

/// Crockford base32 alphabet (no I, L, O, U).
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// Number of encoded characters for a 128-bit value.
const ENCODED_LEN: usize = 26;
const TIME_MASK: u64 = (1 << 48) - 1;
const RANDOM_MASK: u128 = (1 << 80) - 1;

fn compose(unix_ms: u64, random: u128) -> u128 {
    (u128::from(unix_ms & TIME_MASK) << 80) | (random & RANDOM_MASK)
}

fn encode_value(value: u128) -> [u8; ENCODED_LEN] {
    let mut out = [b'0'; ENCODED_LEN];
    let mut v = value;
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(v & 0x1f) as usize];
        v >>= 5;
    }
    out
}

fn decode_char(c: u8) -> Option<u8> {
    ALPHABET.iter().position(|&a| a == c).map(|p| p as u8)
}

fn decode_value(s: &str) -> Option<u128> {
    let bytes = s.as_bytes();
    if bytes.len() != ENCODED_LEN || bytes[0] > b'7' {
        return None;
    }
    bytes.iter().try_fold(0u128, |acc, &c| {
        Some((acc << 5) | u128::from(decode_char(c)?))
    })
}

fn format_id(prefix: &str, value: u128) -> String {
    let encoded = encode_value(value);
    let mut s = String::with_capacity(prefix.len() + 1 + ENCODED_LEN);
    s.push_str(prefix);
    s.push('_');
    // The alphabet is ASCII, so every byte is a char.
    s.extend(encoded.iter().map(|&b| b as char));
    s
}

/// Encodes an id from a prefix, a unix millisecond timestamp (masked to 48
/// bits) and a random value (masked to 80 bits).
pub fn encode_id(prefix: &str, unix_ms: u64, random: u128) -> String {
    format_id(prefix, compose(unix_ms, random))
}

/// Extracts the 48-bit millisecond timestamp from an id, or `None` if the id
/// is malformed. The prefix is whatever precedes the last `_`.
pub fn id_timestamp_ms(id: &str) -> Option<u64> {
    let (_, body) = id.rsplit_once('_')?;
    decode_value(body).map(|v| (v >> 80) as u64)
}

/// Whether `id` is exactly `prefix`, `_`, and 26 uppercase Crockford base32
/// characters whose first character is at most `7`.
pub fn is_valid_id(prefix: &str, id: &str) -> bool {
    id.strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('_'))
        .is_some_and(|body| decode_value(body).is_some())
}

/// Generator of strictly increasing ids, even when the clock stalls or goes
/// backwards.
#[derive(Debug, Clone, Default)]
pub struct MonotonicIds {
    last: Option<(u64, u128)>,
}

impl MonotonicIds {
    /// Creates a generator that has not produced any id yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Returns the next id. If `now_ms` (masked to 48 bits) is not after the
    /// last timestamp used, the last timestamp is reused with the last random
    /// part plus one; otherwise `(now_ms, random)` is used.
    pub fn next(&mut self, prefix: &str, now_ms: u64, random: u128) -> String {
        let now_ms = now_ms & TIME_MASK;
        let random = random & RANDOM_MASK;
        let (ms, rnd) = match self.last {
            Some((last_ms, last_rnd)) if now_ms <= last_ms => {
                let next = (last_rnd + 1) & RANDOM_MASK;
                if next == 0 {
                    // Random part overflowed: carry into the timestamp.
                    ((last_ms + 1) & TIME_MASK, 0)
                } else {
                    (last_ms, next)
                }
            }
            _ => (now_ms, random),
        };
        self.last = Some((ms, rnd));
        encode_id(prefix, ms, rnd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_encodings() {
        assert_eq!(encode_id("msg", 0, 0), "msg_00000000000000000000000000");
        assert_eq!(
            encode_id("msg", u64::MAX, u128::MAX),
            "msg_7ZZZZZZZZZZZZZZZZZZZZZZZZZ"
        );
        assert_eq!(encode_id("x", 0, 31), "x_0000000000000000000000000Z");
    }

    #[test]
    fn validity() {
        let id = encode_id("msg", 1_614_265_330_000, 12345);
        assert!(is_valid_id("msg", &id));
        assert!(!is_valid_id("ep", &id));
        assert!(!is_valid_id("ms", &id));
        assert!(!is_valid_id("msg", "msg_8ZZZZZZZZZZZZZZZZZZZZZZZZZ"));
        assert!(!is_valid_id("msg", "msg_0000000000000000000000000"));
        assert!(!is_valid_id("msg", "msg_0000000000000000000000000a"));
        assert!(!is_valid_id("msg", "msg_000000000000000000000000I0"));
        assert!(!is_valid_id("msg", "msg00000000000000000000000000"));
        assert_eq!(id_timestamp_ms("garbage"), None);
        assert_eq!(id_timestamp_ms("a_b"), None);
    }

    #[test]
    fn monotonic_reuses_time_and_increments() {
        let mut g = MonotonicIds::new();
        let a = g.next("m", 100, 5);
        let b = g.next("m", 90, 0);
        assert_eq!(b, encode_id("m", 100, 6));
        assert!(a < b);
        let c = g.next("m", 200, 1);
        assert_eq!(c, encode_id("m", 200, 1));
    }

    #[test]
    fn monotonic_carries_on_random_overflow() {
        let mut g = MonotonicIds::new();
        let a = g.next("m", 100, RANDOM_MASK);
        let b = g.next("m", 100, 0);
        assert!(a < b);
        assert_eq!(id_timestamp_ms(&b), Some(101));
    }

    proptest! {
        #[test]
        fn timestamp_round_trip(ms in 0u64..(1 << 48), rnd in any::<u128>()) {
            let id = encode_id("evt", ms, rnd);
            prop_assert!(is_valid_id("evt", &id));
            prop_assert_eq!(id_timestamp_ms(&id), Some(ms));
        }

        #[test]
        fn string_order_matches_numeric_order(a in any::<(u64, u128)>(), b in any::<(u64, u128)>()) {
            let (va, vb) = (compose(a.0, a.1), compose(b.0, b.1));
            let (sa, sb) = (encode_id("p", a.0, a.1), encode_id("p", b.0, b.1));
            prop_assert_eq!(va.cmp(&vb), sa.cmp(&sb));
        }

        #[test]
        fn monotonic_ids_strictly_increase(
            calls in proptest::collection::vec((0u64..10_000, any::<u128>()), 1..64)
        ) {
            let mut g = MonotonicIds::new();
            let mut prev: Option<String> = None;
            for (ms, rnd) in calls {
                let id = g.next("del", ms, rnd);
                if let Some(p) = &prev {
                    prop_assert!(*p < id, "{} !< {}", p, id);
                }
                prev = Some(id);
            }
        }
    }
}
