//! Large-result offload: the local blob store served over HTTP, and S3 through a real `s3s-fs` server.
//!
//! The S3 test looks for `s3s-fs` in `HERALD_TEST_S3S_FS`, then `.tools/bin/s3s-fs` in the workspace
//! (installed by `.ci/run`), then on `PATH`; without it the test fails in CI and skips elsewhere.

use std::io::Read as _;
use std::net::TcpListener as StdListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use herald_server::app::now_ms;
use herald_server::blobs::{self, BlobStoreKind, ResultIndirect};
use herald_server::Config;
use sha2::Digest as _;

use crate::helpers::TempDir;

const FIVE_MIB: usize = 5 * 1024 * 1024;

/// Deterministic, incompressible bytes (xorshift64*).
fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

fn sha256_hex(data: &[u8]) -> String {
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn gunzip(gz: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_end(&mut out)
        .expect("the blob is valid gzip");
    out
}

async fn fetch(url: &str) -> (reqwest::StatusCode, reqwest::header::HeaderMap, Vec<u8>) {
    let response = reqwest::get(url).await.expect("download request");
    let (status, headers) = (response.status(), response.headers().clone());
    (status, headers, response.bytes().await.unwrap().to_vec())
}

/// Download `indirect`'s URL and check that it yields exactly `data`.
async fn assert_downloads(indirect: &ResultIndirect, data: &[u8]) {
    assert_eq!(indirect.size, data.len() as u64);
    assert_eq!(indirect.sha256, sha256_hex(data));
    assert_eq!(indirect.content_encoding, "gzip");
    let expires = herald_core::time::parse_rfc3339(&indirect.expires_at).expect("RFC 3339");
    assert!(expires > now_ms(), "{} is in the past", indirect.expires_at);
    let (status, _, body) = fetch(&indirect.url).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let plain = gunzip(&body);
    assert_eq!(plain.len(), data.len());
    assert_eq!(sha256_hex(&plain), indirect.sha256);
}

#[tokio::test]
async fn local_blobs_download_over_http_and_reject_bad_signatures() {
    let dir = TempDir::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let config = Config::with_data_dir(dir.path());
    let (store, router) = blobs::open_with_router(&config, &base).unwrap();
    assert_eq!(store.kind(), "local");
    let server = tokio::spawn(async move { axum::serve(listener, router.unwrap()).await });

    let data = pseudo_random(FIVE_MIB, 7);
    let put = store
        .put_gzip("jobs/job_offload", &data, now_ms())
        .await
        .unwrap();
    assert!(put
        .url
        .starts_with(&format!("{base}/v1/blobs/jobs/job_offload?")));
    assert_downloads(&put, &data).await;
    let (_, headers, _) = fetch(&put.url).await;
    assert_eq!(headers["content-type"], "application/gzip");

    // A fresh URL for the same blob works too.
    let again = store
        .url_for("jobs/job_offload", put.size, &put.sha256, now_ms())
        .await
        .unwrap();
    assert_downloads(&again, &data).await;

    // A tampered signature, or a URL for another key, is refused with a JSON 403.
    let last = put.url.chars().last().unwrap();
    let tampered = format!(
        "{}{}",
        &put.url[..put.url.len() - 1],
        if last == '0' { '1' } else { '0' }
    );
    let other_key = put.url.replace("job_offload", "job_other");
    for url in [tampered, other_key] {
        let (status, _, body) = fetch(&url).await;
        assert_eq!(status, 403, "{url}");
        let error: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(error["error"]["code"], "forbidden");
    }

    // A URL whose one-second lifetime ended ten seconds ago is refused.
    let mut short = config.clone();
    short.blobs.blob_url_ttl_secs = 1;
    let short_lived = blobs::open(&short, &base).unwrap();
    let expired = short_lived
        .url_for("jobs/job_offload", put.size, &put.sha256, now_ms() - 10_000)
        .await
        .unwrap();
    assert_eq!(fetch(&expired.url).await.0, 403);

    // A well-signed URL for a missing blob is a 404.
    let missing = store.url_for("jobs/none", 1, "00", now_ms()).await.unwrap();
    assert_eq!(fetch(&missing.url).await.0, 404);
    server.abort();
}

/// An `s3s-fs` child process, killed on drop.
struct S3sFs {
    child: Child,
    endpoint: String,
    _root: TempDir,
}

impl Drop for S3sFs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const ACCESS_KEY: &str = "herald-test-access";
const SECRET_KEY: &str = "herald-test-secret-0123456789";
const BUCKET: &str = "herald-blobs";

fn find_s3s_fs() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("HERALD_TEST_S3S_FS") {
        return Some(PathBuf::from(path));
    }
    let tools = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.tools/bin/s3s-fs");
    if tools.is_file() {
        return Some(tools);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("s3s-fs"))
        .find(|candidate| candidate.is_file())
}

impl S3sFs {
    /// Start `binary` on a free loopback port with a fresh root holding an empty bucket.
    fn start(binary: &PathBuf) -> S3sFs {
        let root = TempDir::new();
        std::fs::create_dir_all(root.path().join(BUCKET)).unwrap();
        let port = StdListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(binary)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(root.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let mut server = S3sFs {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            _root: root,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = server.child.try_wait().unwrap() {
                panic!("s3s-fs exited early: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "s3s-fs did not listen within 20 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }
}

#[tokio::test]
async fn s3_blobs_download_through_presigned_urls() {
    let Some(binary) = find_s3s_fs() else {
        if std::env::var_os("CI").is_some() {
            panic!("s3s-fs is required in CI: install it with .ci/run or set HERALD_TEST_S3S_FS");
        }
        eprintln!("skipping S3 offload test: s3s-fs not installed");
        return;
    };
    let s3 = S3sFs::start(&binary);
    let dir = TempDir::new();
    let mut config = Config::with_data_dir(dir.path());
    let b = &mut config.blobs;
    b.blob_store = BlobStoreKind::S3;
    b.s3_endpoint = Some(s3.endpoint.clone());
    b.s3_bucket = Some(BUCKET.into());
    b.s3_access_key_id = Some(ACCESS_KEY.into());
    b.s3_secret_access_key = Some(SECRET_KEY.into());
    b.s3_allow_http = true;
    blobs::check_settings(&config).expect("valid S3 settings");
    let store = blobs::open(&config, "http://127.0.0.1:1").unwrap();
    assert_eq!(store.kind(), "s3");

    let data = pseudo_random(FIVE_MIB, 11);
    let put = store
        .put_gzip("jobs/job_s3", &data, now_ms())
        .await
        .unwrap();
    assert!(
        put.url
            .starts_with(&format!("{}/{BUCKET}/jobs/job_s3?", s3.endpoint)),
        "{}",
        put.url
    );
    assert_downloads(&put, &data).await;
    let again = store
        .url_for("jobs/job_s3", put.size, &put.sha256, now_ms())
        .await
        .unwrap();
    assert_downloads(&again, &data).await;

    // S3 checks the pre-signature: a URL for another key is refused.
    let forged = put.url.replace("job_s3", "job_xx");
    assert_eq!(fetch(&forged).await.0, 403);

    store.delete("jobs/job_s3").await.unwrap();
    assert_eq!(fetch(&again.url).await.0, 404);
    store.delete("jobs/job_s3").await.unwrap();
}
