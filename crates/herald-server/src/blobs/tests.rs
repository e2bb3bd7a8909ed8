//! Unit tests: signatures, the signing key file, gzip and digests, keys, settings, the download handler.

use std::collections::HashMap;
use std::io::Read as _;
use std::path::PathBuf;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use tower_service::Service as _;

use super::*;

struct Dir(PathBuf);

impl Dir {
    fn new() -> Dir {
        let dir = std::env::temp_dir().join(format!(
            "herald-blobs-{}-{:016x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Dir(dir)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn gunzip(gz: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_end(&mut out)
        .unwrap();
    out
}

#[test]
fn signatures_round_trip_and_reject_tampering() {
    let dir = Dir::new();
    let blobs = LocalBlobs::with_parts(&dir.0, "http://h", 60).unwrap();
    let sig = blobs.sign("jobs/a", 1_000);
    assert_eq!(sig.len(), 64);
    assert_eq!(blobs.verify("jobs/a", "1000", &sig, 999), Ok(()));
    assert_eq!(blobs.verify("jobs/a", "1000", &sig, 1_000), Ok(()));
    let invalid = Err(SignatureError::Invalid);
    assert_eq!(blobs.verify("jobs/b", "1000", &sig, 999), invalid);
    assert_eq!(blobs.verify("jobs/a", "1001", &sig, 999), invalid);
    let mut tampered = sig.clone().into_bytes();
    tampered[0] = if tampered[0] == b'0' { b'1' } else { b'0' };
    let tampered = String::from_utf8(tampered).unwrap();
    assert_eq!(blobs.verify("jobs/a", "1000", &tampered, 999), invalid);
    assert_eq!(blobs.verify("jobs/a", "1000", "zz", 999), invalid);
    assert_eq!(blobs.verify("jobs/a", "soon", &sig, 999), invalid);
    assert_eq!(blobs.verify("jobs/a", "1000", &sig[..62], 999), invalid);
    assert_eq!(
        blobs.verify("jobs/a", "1000", &sig, 1_001),
        Err(SignatureError::Expired)
    );
}

#[test]
fn the_signing_key_is_private_and_survives_reopening() {
    use std::os::unix::fs::PermissionsExt;
    let dir = Dir::new();
    let first = LocalBlobs::with_parts(&dir.0, "http://h", 60).unwrap();
    let mode = std::fs::metadata(dir.0.join("blob-key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let again = LocalBlobs::with_parts(&dir.0, "http://other/", 60).unwrap();
    assert_eq!(first.sign("k", 5), again.sign("k", 5));
    assert_eq!(
        again.signed_url("k", 5),
        format!(
            "http://other/v1/blobs/k?expires=5&sig={}",
            again.sign("k", 5)
        )
    );
    let elsewhere = Dir::new();
    let other = LocalBlobs::with_parts(&elsewhere.0, "http://h", 60).unwrap();
    assert_ne!(first.sign("k", 5), other.sign("k", 5));
}

#[test]
fn gzip_round_trips_and_digests_cover_the_uncompressed_bytes() {
    let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let gz = gzip(&data).unwrap();
    assert_eq!(&gz[..2], &[0x1f, 0x8b]);
    assert_eq!(gunzip(&gz), data);
    assert_eq!(
        sha256_hex(b"abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(gunzip(&gzip(b"").unwrap()), b"");
}

#[tokio::test]
async fn local_put_writes_gzip_and_reports_the_uncompressed_size_and_digest() {
    let dir = Dir::new();
    let blobs = LocalBlobs::with_parts(&dir.0, "http://127.0.0.1:1", 120).unwrap();
    let data = b"hello, offloaded world".repeat(1000);
    let now_ms = 1_700_000_000_500;
    let got = blobs.put_gzip("jobs/job_1", &data, now_ms).await.unwrap();
    assert_eq!(got.size, data.len() as u64);
    assert_eq!(got.sha256, sha256_hex(&data));
    assert_eq!(got.content_encoding, "gzip");
    assert_eq!(got.expires_at, "2023-11-14T22:15:20Z");
    let expires = 1_700_000_000 + 120;
    assert_eq!(got.url, blobs.signed_url("jobs/job_1", expires));
    let stored = std::fs::read(blobs.path_for("jobs/job_1").unwrap()).unwrap();
    assert_eq!(gunzip(&stored), data);
    let again = blobs
        .url_for("jobs/job_1", got.size, &got.sha256, now_ms)
        .await
        .unwrap();
    assert_eq!(again, got);
    assert!(blobs.put_gzip("../escape", b"x", now_ms).await.is_err());
    blobs.delete("jobs/job_1").await.unwrap();
    blobs.delete("jobs/job_1").await.unwrap();
    assert!(!blobs.path_for("jobs/job_1").unwrap().exists());
}

#[test]
fn keys_are_restricted_to_safe_segments() {
    for good in ["jobs/job_01H", "a", "a.b-c_d/e"] {
        assert!(valid_key(good), "{good}");
    }
    for bad in [
        "", "/a", "a/", "a//b", "../a", "a/./b", "a b", "a?b", "a%2e", "é",
    ] {
        assert!(!valid_key(bad), "{bad}");
    }
}

fn load(flags: &[(&'static str, &str)]) -> Result<crate::Config, crate::config::ConfigError> {
    let flags: HashMap<&'static str, String> =
        flags.iter().map(|(k, v)| (*k, v.to_string())).collect();
    let empty = Dir::new();
    let file = empty.0.join("herald.toml");
    std::fs::write(&file, "").unwrap();
    crate::Config::load(&flags, Some(&file))
}

#[test]
fn settings_have_defaults_and_s3_needs_its_settings() {
    let c = load(&[("blob_store", "local")]).unwrap();
    assert_eq!(c.blobs, BlobSettings::default());
    assert_eq!(c.blobs.offload_threshold_bytes, 262_144);
    assert_eq!(c.blobs.blob_url_ttl_secs, 3600);
    assert_eq!(c.blobs.s3_region, "us-east-1");
    let s3 = [
        ("blob_store", "s3"),
        ("s3_endpoint", "http://127.0.0.1:9000"),
        ("s3_bucket", "b"),
        ("s3_access_key_id", "ak"),
        ("s3_secret_access_key", "sk"),
        ("s3_allow_http", "true"),
    ];
    let c = load(&s3).unwrap();
    assert_eq!(c.blobs.blob_store, BlobStoreKind::S3);
    assert!(
        !format!("{c:?}").contains("\"sk\""),
        "the secret is redacted"
    );
    for missing in 1..5 {
        let mut partial = s3.to_vec();
        partial.remove(missing);
        assert_eq!(load(&partial).unwrap_err().setting, s3[missing].0);
    }
    assert_eq!(load(&s3[..5]).unwrap_err().setting, "s3_endpoint");
    assert_eq!(
        load(&[("blob_store", "ftp")]).unwrap_err().setting,
        "blob_store"
    );
    assert_eq!(
        load(&[("blob_url_ttl_secs", "0")]).unwrap_err().setting,
        "blob_url_ttl_secs"
    );
    assert_eq!(
        load(&[("public_url", "x")]).unwrap_err().setting,
        "public_url"
    );
}

#[tokio::test]
async fn the_handler_checks_the_signature_before_the_file() {
    let dir = Dir::new();
    let local = Arc::new(LocalBlobs::with_parts(&dir.0, "", 60).unwrap());
    let now_ms = crate::app::now_ms();
    let put = local.put_gzip("jobs/x", b"payload", now_ms).await.unwrap();
    let mut app = serve::router(local.clone());
    let mut get = |uri: String| {
        let request = Request::get(uri).body(Body::empty()).unwrap();
        app.call(request)
    };
    let ok = get(put.url.clone()).await.unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(ok.headers()["content-type"], "application/gzip");
    let body = axum::body::to_bytes(ok.into_body(), usize::MAX)
        .await
        .unwrap();
    assert_eq!(gunzip(&body), b"payload");
    let forged = put.url.replace("jobs/x", "jobs/y");
    assert_eq!(get(forged).await.unwrap().status(), StatusCode::FORBIDDEN);
    assert_eq!(
        get("/v1/blobs/jobs/x".into()).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    let past = (now_ms / 1000 - 10) as u64;
    let expired = local.signed_url("jobs/x", past);
    let response = get(expired).await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let error: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(error["error"]["code"], "forbidden");
    let missing = local
        .url_for("jobs/none", 1, "00", now_ms)
        .await
        .unwrap()
        .url;
    assert_eq!(get(missing).await.unwrap().status(), StatusCode::NOT_FOUND);
}
