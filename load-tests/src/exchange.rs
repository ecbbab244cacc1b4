//! Runs the real `pingpost serve` binary as child processes on loopback ports.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::market::Market;

/// Where the system of record and the shared state live.
#[derive(Debug, Clone)]
pub struct Backend {
    /// `None`: SQLite in the market's temp dir.
    pub database_url: Option<String>,
    pub redis_url: Option<String>,
    /// Unique per run, so runs never share Redis keys with each other or with other people.
    pub redis_key_prefix: String,
}

pub struct Node {
    pub base_url: String,
    child: Child,
}

impl Node {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory now and at its peak, in KiB, from /proc.
    pub fn memory_kib(&self) -> Option<(u64, u64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        };
        Some((field("VmRSS:")?, field("VmHWM:")?))
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // SIGTERM: a graceful stop; then make sure it is gone.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Starts `nodes` exchanges on one marketplace and waits until each is ready.
pub async fn start(
    binary: &Path,
    market: &Market,
    backend: &Backend,
    nodes: usize,
) -> anyhow::Result<Vec<Node>> {
    let mut started = Vec::with_capacity(nodes);
    for n in 0..nodes {
        let port = free_port()?;
        let log = std::fs::File::create(market.dir.path().join(format!("node{n}.log")))?;
        let mut command = Command::new(binary);
        command
            .arg("serve")
            .arg("--config")
            .arg(&market.config)
            .current_dir(market.dir.path())
            .env("PINGPOST_LISTEN", format!("127.0.0.1:{port}"))
            .env("PINGPOST_REDIS_KEY_PREFIX", &backend.redis_key_prefix)
            .stdout(Stdio::null())
            .stderr(log);
        if let Some(url) = &backend.database_url {
            command.env("PINGPOST_DATABASE_URL", url);
        }
        if let Some(url) = &backend.redis_url {
            command.env("PINGPOST_REDIS_URL", url);
        }
        let child = command.spawn()?;
        started.push(Node {
            base_url: format!("http://127.0.0.1:{port}"),
            child,
        });
    }
    let client = reqwest::Client::new();
    for node in &mut started {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(Some(status)) = node.child.try_wait() {
                anyhow::bail!(
                    "the exchange exited at start ({status}); see {}",
                    market.dir.path().display()
                );
            }
            let ready = client
                .get(format!("{}/readyz", node.base_url))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the exchange did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(started)
}

/// A fresh PostgreSQL database for one run, made with `psql` (trust auth on loopback).
pub fn create_pg_database(admin_url: &str, name: &str) -> anyhow::Result<String> {
    let status = Command::new("psql")
        .arg(admin_url)
        .arg("-qc")
        .arg(format!("drop database if exists {name}"))
        .arg("-c")
        .arg(format!("create database {name}"))
        .status()?;
    anyhow::ensure!(status.success(), "psql could not create database {name}");
    let base = admin_url
        .rsplit_once('/')
        .map(|(base, _)| base)
        .unwrap_or(admin_url);
    Ok(format!("{base}/{name}"))
}
