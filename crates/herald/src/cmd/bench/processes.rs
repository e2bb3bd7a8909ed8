//! Child processes of the bench: `herald serve` and `herald receiver`, each a separate process of this very
//! binary (`std::env::current_exe()`), on a loopback ephemeral port, with its own temporary directory.
//!
//! Children are killed (SIGKILL) and their directories removed when the handle drops; [`Child::stop`] asks for a
//! graceful stop (SIGTERM) instead, which the backlog scenario needs to hand a data directory to a second server.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

/// A temporary directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// A new empty directory under the system temp dir, named after this process and a counter.
    pub fn new(label: &str) -> anyhow::Result<TempDir> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("herald-bench-{}-{n}-{label}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(TempDir(path))
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running child process and the base URL it listens on.
pub struct Child {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    child: tokio::process::Child,
    pid: u32,
    log: PathBuf,
}

impl Child {
    /// Peak resident memory so far (`VmHWM`), in MiB; `None` once the process is gone.
    pub fn peak_rss_mb(&self) -> Option<f64> {
        status_kib(self.pid, "VmHWM:").map(|kib| kib as f64 / 1024.0)
    }

    /// CPU time (user + system) used so far, in seconds.
    pub fn cpu_seconds(&self) -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).ok()?;
        // Fields after the parenthesised command name; utime and stime are fields 14 and 15 (1-based).
        let rest = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let utime: f64 = fields.get(11)?.parse().ok()?;
        let stime: f64 = fields.get(12)?.parse().ok()?;
        // SAFETY: sysconf has no preconditions.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        Some((utime + stime) / ticks.max(1.0))
    }

    /// Whether the process is still running, and if not, the end of its log.
    pub fn health(&mut self) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            other => {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                let tail: String = log
                    .chars()
                    .rev()
                    .take(2000)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                Err(format!(
                    "child {} exited ({other:?}); log tail:\n{tail}",
                    self.pid
                ))
            }
        }
    }

    /// SIGTERM, then wait up to 30 s for a clean exit (SIGKILL after that).
    pub async fn stop(mut self) -> anyhow::Result<()> {
        // SAFETY: kill(2) on our own child's pid; the child has not been reaped yet, so the pid is still ours.
        unsafe {
            libc::kill(self.pid as i32, libc::SIGTERM);
        }
        match tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await {
            Ok(status) => {
                status?;
                Ok(())
            }
            Err(_) => {
                let _ = self.child.kill().await;
                bail!(
                    "child {} did not stop within 30 s (log: {})",
                    self.pid,
                    self.log.display()
                )
            }
        }
    }
}

/// One value in KiB from `/proc/<pid>/status`.
fn status_kib(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    line[key.len()..].split_whitespace().next()?.parse().ok()
}

/// Start `herald <args>` with `env`, stderr to `<dir>/child.log`, and wait for the stdout line carrying
/// `marker` followed by the listening URL.
async fn spawn(
    args: &[String],
    env: &[(&str, String)],
    dir: &Path,
    marker: &str,
) -> anyhow::Result<Child> {
    let exe = std::env::current_exe().context("locating the herald binary")?;
    let log = dir.join("child.log");
    let stderr = std::fs::File::create(&log)?;
    let mut cmd = Command::new(exe);
    // `HERALD_BENCH_LOG` sets the children's log filter (default `warn`), to look into a run.
    let filter = std::env::var("HERALD_BENCH_LOG").unwrap_or_else(|_| "warn".into());
    cmd.args(args)
        .env("RUST_LOG", filter)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().context("spawning a child herald")?;
    let pid = child.id().ok_or_else(|| anyhow!("child exited at once"))?;
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let find = async {
        while let Some(line) = lines.next_line().await? {
            if let Some(at) = line.find(marker) {
                let url = line[at + marker.len()..]
                    .split_whitespace()
                    .next()
                    .unwrap_or("");
                return Ok::<_, std::io::Error>(Some(url.trim_end_matches('/').to_string()));
            }
        }
        Ok(None)
    };
    let base = match tokio::time::timeout(Duration::from_secs(30), find).await {
        Ok(Ok(Some(url))) => url,
        _ => {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            bail!("child `herald {}` did not start:\n{text}", args.join(" "))
        }
    };
    // Keep draining stdout so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(Child {
        base,
        child,
        pid,
        log,
    })
}

/// What a bench server needs to know.
pub struct ServerSpec<'a> {
    /// Data directory (kept by the caller so a second server can reuse it).
    pub data_dir: &'a Path,
    /// `api` (publish, no delivery) or `all`.
    pub role: &'a str,
    /// Admin token (>= 16 characters).
    pub token: &'a str,
    /// Passed through as `--database-url`.
    pub database_url: Option<&'a str>,
}

/// Start `herald serve` on `127.0.0.1:0`.
pub async fn start_server(spec: &ServerSpec<'_>) -> anyhow::Result<Child> {
    let mut args: Vec<String> = vec![
        "serve".into(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--role".into(),
        spec.role.into(),
        "--data-dir".into(),
        spec.data_dir.display().to_string(),
    ];
    if let Some(url) = spec.database_url {
        args.push("--database-url".into());
        args.push(url.into());
    }
    let env = [
        ("HERALD_ADMIN_TOKEN", spec.token.to_string()),
        ("HERALD_ALLOW_PRIVATE_TARGETS", "true".to_string()),
    ];
    spawn(&args, &env, spec.data_dir, "listening on ").await
}

/// Start `herald receiver --quiet --port 0` (answers 204, counts at `GET /stats`).
pub async fn start_receiver(dir: &Path) -> anyhow::Result<Child> {
    let args: Vec<String> = ["receiver", "--quiet", "--port", "0"]
        .map(String::from)
        .to_vec();
    spawn(&args, &[], dir, "listening on ").await
}
