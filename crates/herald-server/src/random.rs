//! Fresh random values: ids, secrets, tokens. The only place outside the store that draws randomness.

use herald_core::ids::encode_id;
use herald_core::signing::Secret;
use rand::Rng;

/// A new correlation id (`corr_…`), time-sortable.
pub fn correlation_id(now_ms: i64) -> String {
    encode_id("corr", now_ms.max(0) as u64, rand::rng().random())
}

/// A new span id (W3C: 8 random bytes, never zero).
pub fn span_id() -> u64 {
    rand::rng().random::<u64>().max(1)
}

/// A new, sampled trace (W3C `traceparent`).
pub fn new_trace() -> herald_core::trace::TraceParent {
    herald_core::trace::TraceParent::new(rand::rng().random(), rand::rng().random())
}

/// A new endpoint signing secret (`whsec_` + base64 of 32 random bytes).
pub fn signing_secret() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    Secret::from_bytes(&bytes)
        .expect("32 bytes is a valid secret length")
        .to_whsec()
}

/// A new API token: 32 random bytes, hex.
pub fn api_token(prefix: &str) -> String {
    let bytes: [u8; 32] = rand::rng().random();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}_{hex}")
}

/// Hex SHA-256 of a token, as stored.
pub fn token_hash(token: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A uniform sample in [0, 1) for retry jitter.
pub fn jitter_sample() -> f64 {
    rand::rng().random::<f64>()
}

/// Eight random hex characters (compatibility reference ids).
pub fn short_hex() -> String {
    format!("{:08x}", rand::rng().random::<u32>())
}
