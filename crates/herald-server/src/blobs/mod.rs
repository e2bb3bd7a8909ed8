//! Blob stores for large-result offload.
//!
//! A job result larger than `offload_threshold_bytes` is gzip-compressed into a [`BlobStore`] and the
//! callback receives a [`ResultIndirect`] instead: an expiring download URL plus the size and SHA-256 of
//! the uncompressed bytes. Two stores exist: [`LocalBlobs`] (files in `<data_dir>/blobs`, served by
//! this node at HMAC-signed URLs, see [`serve`]) and [`S3Blobs`] (any S3-compatible service, pre-signed
//! GET URLs).

mod local;
mod s3;
pub mod serve;

use std::fmt;
use std::io::Write as _;
use std::str::FromStr;
use std::sync::Arc;

use sha2::Digest as _;

pub use local::{LocalBlobs, SignatureError};
pub use s3::S3Blobs;

/// Where an offloaded blob can be downloaded (the API type: it is part of the job as clients see it).
pub use herald_api::jobs::ResultIndirect;

/// Data compressed for a blob: the gzip bytes, with the size and SHA-256 of what went in.
#[derive(Debug, Clone)]
pub struct Compressed {
    /// The gzip member.
    pub gz: Vec<u8>,
    /// Uncompressed size in bytes.
    pub size: u64,
    /// Lowercase hex SHA-256 of the uncompressed bytes.
    pub sha256: String,
}

impl Compressed {
    /// Compress `data`.
    pub fn of(data: &[u8]) -> std::io::Result<Compressed> {
        let mut c = Compressor::new(data.len());
        c.write_all(data)?;
        c.finish()
    }
}

/// A writer that gzips and digests what is written to it, so data can be compressed as it is produced
/// instead of being assembled first.
pub struct Compressor {
    gz: flate2::write::GzEncoder<Vec<u8>>,
    hasher: sha2::Sha256,
    size: u64,
}

impl Compressor {
    /// A compressor expecting about `size_hint` bytes.
    pub fn new(size_hint: usize) -> Compressor {
        Compressor {
            gz: flate2::write::GzEncoder::new(
                Vec::with_capacity(size_hint / 4 + 64),
                flate2::Compression::default(),
            ),
            hasher: sha2::Sha256::new(),
            size: 0,
        }
    }

    /// The compressed data.
    pub fn finish(self) -> std::io::Result<Compressed> {
        Ok(Compressed {
            gz: self.gz.finish()?,
            size: self.size,
            sha256: hex(&self.hasher.finalize()),
        })
    }
}

impl std::io::Write for Compressor {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.gz.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.gz.flush()
    }
}

/// A place to keep offloaded results and hand out download URLs for them.
#[async_trait::async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Store compressed data under `key` (e.g. `"jobs/<job_id>"`), return the indirect message with a URL
    /// valid for the configured TTL from `now_ms`.
    async fn put_compressed(
        &self,
        key: &str,
        data: Compressed,
        now_ms: i64,
    ) -> anyhow::Result<ResultIndirect>;
    /// gzip `data` and store it like [`BlobStore::put_compressed`].
    async fn put_gzip(
        &self,
        key: &str,
        data: &[u8],
        now_ms: i64,
    ) -> anyhow::Result<ResultIndirect> {
        let compressed = Compressed::of(data)?;
        self.put_compressed(key, compressed, now_ms).await
    }
    /// A fresh download URL for an existing blob (e.g. when the job is read long after), valid from
    /// `now_ms`. Does not check that the blob exists.
    async fn url_for(
        &self,
        key: &str,
        size: u64,
        sha256: &str,
        now_ms: i64,
    ) -> anyhow::Result<ResultIndirect>;
    /// Remove the blob under `key`; removing a missing blob succeeds.
    async fn delete(&self, key: &str) -> anyhow::Result<()>;
    /// `"local"` or `"s3"`.
    fn kind(&self) -> &'static str;
}

/// Which blob store a node uses (setting `blob_store`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BlobStoreKind {
    /// Files in `<data_dir>/blobs`, served by this node.
    #[default]
    Local,
    /// An S3-compatible service.
    S3,
}

impl FromStr for BlobStoreKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "local" => Ok(BlobStoreKind::Local),
            "s3" => Ok(BlobStoreKind::S3),
            _ => Err("expected local or s3".into()),
        }
    }
}

/// Blob store and offload settings (names as in `herald.toml`).
#[derive(Clone, PartialEq, Eq)]
pub struct BlobSettings {
    /// `blob_store`: `local` (default) or `s3`.
    pub blob_store: BlobStoreKind,
    /// `s3_endpoint`: base URL of the S3 service, e.g. `https://s3.us-east-1.amazonaws.com`.
    pub s3_endpoint: Option<String>,
    /// `s3_region` (default `us-east-1`).
    pub s3_region: String,
    /// `s3_bucket`.
    pub s3_bucket: Option<String>,
    /// `s3_access_key_id`.
    pub s3_access_key_id: Option<String>,
    /// `s3_secret_access_key`.
    pub s3_secret_access_key: Option<String>,
    /// `s3_allow_http`: permit a plain-HTTP endpoint (default false).
    pub s3_allow_http: bool,
    /// `offload_threshold_bytes`: results larger than this are offloaded (default 256 KiB).
    pub offload_threshold_bytes: usize,
    /// `blob_url_ttl_secs`: how long download URLs stay valid (default one hour).
    pub blob_url_ttl_secs: u64,
}

impl Default for BlobSettings {
    fn default() -> Self {
        BlobSettings {
            blob_store: BlobStoreKind::Local,
            s3_endpoint: None,
            s3_region: "us-east-1".into(),
            s3_bucket: None,
            s3_access_key_id: None,
            s3_secret_access_key: None,
            s3_allow_http: false,
            offload_threshold_bytes: 256 * 1024,
            blob_url_ttl_secs: 3600,
        }
    }
}

impl fmt::Debug for BlobSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secret = self.s3_secret_access_key.as_ref().map(|_| "<redacted>");
        f.debug_struct("BlobSettings")
            .field("blob_store", &self.blob_store)
            .field("s3_endpoint", &self.s3_endpoint)
            .field("s3_region", &self.s3_region)
            .field("s3_bucket", &self.s3_bucket)
            .field("s3_access_key_id", &self.s3_access_key_id)
            .field("s3_secret_access_key", &secret)
            .field("s3_allow_http", &self.s3_allow_http)
            .field("offload_threshold_bytes", &self.offload_threshold_bytes)
            .field("blob_url_ttl_secs", &self.blob_url_ttl_secs)
            .finish()
    }
}

/// The longest URL lifetime: S3 pre-signed URLs cannot outlive seven days.
pub const MAX_URL_TTL_SECS: u64 = 7 * 24 * 3600;

/// Start-up checks of the blob settings: `Err((setting, message))` names the offending setting.
pub fn check_settings(config: &crate::Config) -> Result<(), (&'static str, String)> {
    let b = &config.blobs;
    if b.offload_threshold_bytes == 0 {
        return Err(("offload_threshold_bytes", "must be at least 1".into()));
    }
    if b.blob_url_ttl_secs == 0 || b.blob_url_ttl_secs > MAX_URL_TTL_SECS {
        let message = format!("must be between 1 and {MAX_URL_TTL_SECS}");
        return Err(("blob_url_ttl_secs", message));
    }
    if let Some(url) = &config.public_url {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(("public_url", "must start with http:// or https://".into()));
        }
    }
    if b.blob_store != BlobStoreKind::S3 {
        return Ok(());
    }
    let required = [
        ("s3_endpoint", &b.s3_endpoint),
        ("s3_bucket", &b.s3_bucket),
        ("s3_access_key_id", &b.s3_access_key_id),
        ("s3_secret_access_key", &b.s3_secret_access_key),
    ];
    for (name, value) in required {
        if value.as_deref().is_none_or(|v| v.trim().is_empty()) {
            return Err((name, "is required when blob_store is s3".into()));
        }
    }
    let endpoint = b.s3_endpoint.as_deref().unwrap_or_default();
    if endpoint.starts_with("http://") && !b.s3_allow_http {
        let message = "is plain http://; set s3_allow_http = true to permit it";
        return Err(("s3_endpoint", message.into()));
    }
    if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
        return Err(("s3_endpoint", "must start with http:// or https://".into()));
    }
    if b.s3_region.trim().is_empty() {
        return Err(("s3_region", "must not be empty".into()));
    }
    Ok(())
}

/// Build the configured store. `public_base_url` is how clients reach this node (e.g.
/// `"http://127.0.0.1:8000"`); the `public_url` setting, when set, takes precedence.
pub fn open(config: &crate::Config, public_base_url: &str) -> anyhow::Result<Arc<dyn BlobStore>> {
    Ok(open_with_router(config, public_base_url)?.0)
}

/// Like [`open`], plus the download routes to merge into the node's router when the store is local.
pub fn open_with_router(
    config: &crate::Config,
    public_base_url: &str,
) -> anyhow::Result<(Arc<dyn BlobStore>, Option<axum::Router>)> {
    match config.blobs.blob_store {
        BlobStoreKind::Local => {
            let local = Arc::new(LocalBlobs::open(config, public_base_url)?);
            Ok((local.clone(), Some(serve::router(local))))
        }
        BlobStoreKind::S3 => Ok((Arc::new(S3Blobs::open(&config.blobs)?), None)),
    }
}

/// gzip-compress `data` (default level).
pub fn gzip(data: &[u8]) -> std::io::Result<Vec<u8>> {
    Compressed::of(data).map(|c| c.gz)
}

/// Lowercase hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(&sha2::Sha256::digest(data))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `key` is a safe blob key: `/`-separated segments of `[A-Za-z0-9._-]`, none empty, `.` or `..`.
pub fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 512
        && key.split('/').all(|segment| {
            !segment.is_empty()
                && segment != "."
                && segment != ".."
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        })
}

fn check_key(key: &str) -> anyhow::Result<()> {
    anyhow::ensure!(valid_key(key), "invalid blob key {key:?}");
    Ok(())
}

fn indirect(url: String, expires_ms: i64, size: u64, sha256: &str) -> ResultIndirect {
    ResultIndirect {
        url,
        expires_at: herald_core::time::format_rfc3339_secs(expires_ms),
        size,
        sha256: sha256.to_string(),
        content_encoding: "gzip".into(),
    }
}

#[cfg(test)]
mod tests;
