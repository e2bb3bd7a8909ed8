//! The local blob store: gzip files under `<data_dir>/blobs`, downloaded from this node at URLs signed
//! with HMAC-SHA256 under a key kept in `<data_dir>/blob-key` (so URLs survive restarts).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use hmac::{Hmac, Mac};
use rand::Rng as _;
use sha2::Sha256;

use super::{check_key, hex, indirect, BlobStore, Compressed, ResultIndirect};

/// The local store (also used by the HTTP handler to check signatures and read files).
pub struct LocalBlobs {
    dir: PathBuf,
    key: [u8; 32],
    base_url: String,
    ttl_secs: u64,
}

impl std::fmt::Debug for LocalBlobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalBlobs")
            .field("dir", &self.dir)
            .field("base_url", &self.base_url)
            .field("ttl_secs", &self.ttl_secs)
            .finish_non_exhaustive()
    }
}

/// Why a download URL was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// Missing or malformed parameters, or a signature that does not match.
    #[error("the blob URL signature is invalid")]
    Invalid,
    /// A valid signature whose time is up.
    #[error("the blob URL has expired")]
    Expired,
}

impl LocalBlobs {
    /// Open (creating if needed) `<data_dir>/blobs` and the signing key of `config`'s data dir. URLs start
    /// with the `public_url` setting, else with `public_base_url`.
    pub fn open(config: &crate::Config, public_base_url: &str) -> anyhow::Result<LocalBlobs> {
        let base = config.public_url.as_deref().unwrap_or(public_base_url);
        Self::with_parts(&config.data_dir, base, config.blobs.blob_url_ttl_secs)
    }

    /// Open a store in `data_dir` whose URLs start with `base_url` and last `ttl_secs`.
    pub fn with_parts(
        data_dir: &Path,
        base_url: &str,
        ttl_secs: u64,
    ) -> anyhow::Result<LocalBlobs> {
        let dir = data_dir.join("blobs");
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create the blob dir {}", dir.display()))?;
        let key = load_or_create_key(&data_dir.join("blob-key"))?;
        Ok(LocalBlobs {
            dir,
            key,
            base_url: base_url.trim_end_matches('/').to_string(),
            ttl_secs,
        })
    }

    /// The file holding the blob under `key` (`None` for an unsafe key).
    pub fn path_for(&self, key: &str) -> Option<PathBuf> {
        super::valid_key(key).then(|| self.dir.join(format!("{key}.gz")))
    }

    /// Hex HMAC-SHA256 of `key + "\n" + expires`.
    pub fn sign(&self, key: &str, expires: u64) -> String {
        hex(&self.mac(key, expires).finalize().into_bytes())
    }

    /// Check a download's `expires` (unix seconds) and `sig` for `key` at `now_secs`.
    pub fn verify(
        &self,
        key: &str,
        expires: &str,
        sig: &str,
        now_secs: u64,
    ) -> Result<(), SignatureError> {
        let expires: u64 = expires.parse().map_err(|_| SignatureError::Invalid)?;
        let sig = unhex(sig).ok_or(SignatureError::Invalid)?;
        self.mac(key, expires)
            .verify_slice(&sig)
            .map_err(|_| SignatureError::Invalid)?;
        if now_secs > expires {
            return Err(SignatureError::Expired);
        }
        Ok(())
    }

    /// The signed download URL for `key`, valid until `expires` (unix seconds).
    pub fn signed_url(&self, key: &str, expires: u64) -> String {
        let sig = self.sign(key, expires);
        format!(
            "{}/v1/blobs/{key}?expires={expires}&sig={sig}",
            self.base_url
        )
    }

    fn mac(&self, key: &str, expires: u64) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(key.as_bytes());
        mac.update(b"\n");
        mac.update(expires.to_string().as_bytes());
        mac
    }

    fn indirect_at(&self, key: &str, size: u64, sha256: &str, now_ms: i64) -> ResultIndirect {
        let expires = (now_ms.max(0) / 1000) as u64 + self.ttl_secs;
        let url = self.signed_url(key, expires);
        indirect(url, (expires * 1000) as i64, size, sha256)
    }
}

#[async_trait::async_trait]
impl BlobStore for LocalBlobs {
    async fn put_compressed(
        &self,
        key: &str,
        data: Compressed,
        now_ms: i64,
    ) -> anyhow::Result<ResultIndirect> {
        check_key(key)?;
        let path = self.path_for(key).expect("checked key");
        let Compressed { gz, size, sha256 } = data;
        let target = path.clone();
        tokio::task::spawn_blocking(move || write_atomic(&target, &gz))
            .await?
            .with_context(|| format!("cannot write blob {}", path.display()))?;
        Ok(self.indirect_at(key, size, &sha256, now_ms))
    }

    async fn url_for(
        &self,
        key: &str,
        size: u64,
        sha256: &str,
        now_ms: i64,
    ) -> anyhow::Result<ResultIndirect> {
        check_key(key)?;
        Ok(self.indirect_at(key, size, sha256, now_ms))
    }

    async fn delete(&self, key: &str) -> anyhow::Result<()> {
        check_key(key)?;
        let path = self.path_for(key).expect("checked key");
        match tokio::fs::remove_file(&path).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("cannot delete blob {}", path.display()))
            }
            _ => Ok(()),
        }
    }

    fn kind(&self) -> &'static str {
        "local"
    }
}

/// Write `bytes` to `path` through a temporary file and a rename, so readers never see a partial blob.
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().expect("blob paths have a parent");
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".tmp-{}-{:016x}",
        std::process::id(),
        rand::rng().random::<u64>()
    ));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Read the 32-byte signing key (hex) at `path`, or create it (mode 0600). Creation writes a private
/// temporary file and hard-links it into place, so concurrent starters agree on one key.
fn load_or_create_key(path: &Path) -> anyhow::Result<[u8; 32]> {
    let read = |path: &Path| -> anyhow::Result<Option<[u8; 32]>> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let bytes = unhex(text.trim())
                    .filter(|b| b.len() == 32)
                    .with_context(|| {
                        format!(
                            "{} is not 64 hex characters; remove it to make a new key",
                            path.display()
                        )
                    })?;
                Ok(Some(bytes.try_into().expect("32 bytes")))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    };
    if let Some(key) = read(path)? {
        return Ok(key);
    }
    let key: [u8; 32] = rand::rng().random();
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let created = (|| {
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(hex(&key).as_bytes())?;
        file.sync_all()?;
        std::fs::hard_link(&tmp, path)
    })();
    let _ = std::fs::remove_file(&tmp);
    match created {
        Ok(()) => Ok(key),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            read(path)?.context("the blob key vanished while starting")
        }
        Err(e) => Err(e).with_context(|| format!("cannot save the blob key to {}", path.display())),
    }
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    let digit = |c: u8| (c as char).to_digit(16);
    text.as_bytes()
        .chunks(2)
        .map(|pair| match pair {
            [hi, lo] => Some((digit(*hi)? * 16 + digit(*lo)?) as u8),
            _ => None,
        })
        .collect()
}
