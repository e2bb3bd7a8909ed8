//! `herald serve` as a separate process, for tests that kill nodes (SIGKILL) or run several of them.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::ADMIN_TOKEN;

/// A free port on 127.0.0.1 (bound and released; the tiny race is acceptable in tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `herald serve` process, killed (SIGKILL) and reaped when dropped.
pub struct HeraldProcess {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
}

impl HeraldProcess {
    /// Start `herald serve` on `port` with `data_dir`, extra flags and environment, and wait until it answers.
    pub async fn start(
        data_dir: &Path,
        port: u16,
        flags: &[&str],
        env: &[(&str, &str)],
    ) -> HeraldProcess {
        let mut command = Command::new(env!("CARGO_BIN_EXE_herald"));
        command
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
            ])
            .arg(data_dir)
            .args(flags)
            .env("HERALD_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("HERALD_ALLOW_PRIVATE_TARGETS", "true")
            .env("HERALD_POLL_INTERVAL_MS", "50")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null());
        for (k, v) in env {
            command.env(k, v);
        }
        let process = HeraldProcess {
            child: command.spawn().expect("herald binary starts"),
            base: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = reqwest::get(format!("{}/healthz", process.base)).await {
                if r.status().is_success() {
                    return process;
                }
            }
            assert!(Instant::now() < deadline, "herald did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Kill with SIGKILL (no shutdown work at all) and reap.
    pub fn sigkill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for HeraldProcess {
    fn drop(&mut self) {
        self.sigkill();
    }
}
