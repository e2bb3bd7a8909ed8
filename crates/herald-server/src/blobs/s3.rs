//! The S3 blob store: gzip objects in an S3-compatible bucket, downloaded with pre-signed GET URLs.
//!
//! Built on `object_store` (SigV4 signing with `ring`, TLS with rustls and the `ring` provider).

use std::time::Duration;

use anyhow::Context as _;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::signer::{Method, Signer as _};
use object_store::{Attribute, Attributes, ObjectStore as _, ObjectStoreExt as _, PutOptions};

use super::{check_key, indirect, BlobSettings, BlobStore, Compressed, ResultIndirect};

/// Blobs in an S3-compatible bucket.
#[derive(Debug)]
pub struct S3Blobs {
    store: AmazonS3,
    ttl: Duration,
}

impl S3Blobs {
    /// Connect with the `s3_*` settings (checked at start-up; missing ones are reported by name here too).
    pub fn open(settings: &BlobSettings) -> anyhow::Result<S3Blobs> {
        // reqwest is built without a bundled TLS provider (no aws-lc): use ring, as the rest of Herald does.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let need = |name: &str, value: &Option<String>| {
            value
                .clone()
                .filter(|v| !v.trim().is_empty())
                .with_context(|| format!("setting {name} is required when blob_store is s3"))
        };
        let store = AmazonS3Builder::new()
            .with_endpoint(need("s3_endpoint", &settings.s3_endpoint)?)
            .with_region(settings.s3_region.clone())
            .with_bucket_name(need("s3_bucket", &settings.s3_bucket)?)
            .with_access_key_id(need("s3_access_key_id", &settings.s3_access_key_id)?)
            .with_secret_access_key(need(
                "s3_secret_access_key",
                &settings.s3_secret_access_key,
            )?)
            .with_allow_http(settings.s3_allow_http)
            .build()
            .context("cannot configure the S3 blob store (settings s3_*)")?;
        Ok(S3Blobs {
            store,
            ttl: Duration::from_secs(settings.blob_url_ttl_secs),
        })
    }

    async fn presign(
        &self,
        key: &str,
        size: u64,
        sha256: &str,
        now_ms: i64,
    ) -> anyhow::Result<ResultIndirect> {
        let url = self
            .store
            .signed_url(Method::GET, &ObjectPath::from(key), self.ttl)
            .await
            .with_context(|| format!("cannot pre-sign a URL for blob {key}"))?;
        let expires_ms = now_ms + self.ttl.as_millis() as i64;
        Ok(indirect(url.into(), expires_ms, size, sha256))
    }
}

#[async_trait::async_trait]
impl BlobStore for S3Blobs {
    async fn put_compressed(
        &self,
        key: &str,
        data: Compressed,
        now_ms: i64,
    ) -> anyhow::Result<ResultIndirect> {
        check_key(key)?;
        let Compressed { gz, size, sha256 } = data;
        let attributes = Attributes::from_iter([(Attribute::ContentType, "application/gzip")]);
        self.store
            .put_opts(
                &ObjectPath::from(key),
                gz.into(),
                PutOptions::from(attributes),
            )
            .await
            .with_context(|| format!("cannot upload blob {key} to S3"))?;
        self.presign(key, size, &sha256, now_ms).await
    }

    async fn url_for(
        &self,
        key: &str,
        size: u64,
        sha256: &str,
        now_ms: i64,
    ) -> anyhow::Result<ResultIndirect> {
        check_key(key)?;
        self.presign(key, size, sha256, now_ms).await
    }

    async fn delete(&self, key: &str) -> anyhow::Result<()> {
        check_key(key)?;
        match self.store.delete(&ObjectPath::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e).with_context(|| format!("cannot delete blob {key} from S3")),
        }
    }

    fn kind(&self) -> &'static str {
        "s3"
    }
}
