//! PostgreSQL stopped under the exchange: 503s with the error JSON, nothing half-written,
//! and service back without a restart. The test runs its own PostgreSQL instance, so
//! stopping it disturbs no other test; it runs with the PostgreSQL suite.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::helpers::*;

/// A throwaway PostgreSQL cluster in a temp dir, on its own port.
struct Cluster {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    _dir: tempfile::TempDir,
}

fn as_postgres(bin: &Path, tool: &str) -> Command {
    // initdb and pg_ctl refuse to run as root; CI runs as root.
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"));
    if is_root {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(bin.join(tool));
        command
    } else {
        Command::new(bin.join(tool))
    }
}

impl Cluster {
    fn bin_dir() -> Option<PathBuf> {
        let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|p| p.join("initdb").exists())
            .collect();
        versions.sort();
        versions.pop()
    }

    fn create() -> Cluster {
        let bin = Cluster::bin_dir().expect("PostgreSQL server binaries under /usr/lib/postgresql");
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        Command::new("chmod")
            .args(["777"])
            .arg(dir.path())
            .status()
            .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let ok = as_postgres(&bin, "initdb")
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
            .arg(&data)
            .output()
            .unwrap();
        assert!(
            ok.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&ok.stderr)
        );
        let cluster = Cluster {
            bin,
            data,
            port,
            _dir: dir,
        };
        cluster.start();
        cluster
    }

    fn start(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c fsync=off",
            self.port,
            self.data.display()
        );
        let ok = as_postgres(&self.bin, "pg_ctl")
            .args(["-w", "-l"])
            .arg(self.data.join("log"))
            .arg("-D")
            .arg(&self.data)
            .args(["-o", &options, "start"])
            .output()
            .unwrap();
        assert!(
            ok.status.success(),
            "pg_ctl start: {}",
            String::from_utf8_lossy(&ok.stderr)
        );
    }

    fn stop(&self) {
        // Immediate: like a crash or a pulled plug, connections drop mid-conversation.
        let _ = as_postgres(&self.bin, "pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test]
async fn postgres_stopped_mid_run_gives_503s_and_the_exchange_recovers_by_itself() {
    if std::env::var(crate::db::URL_VAR).is_err() {
        println!(
            "skipped: runs with the PostgreSQL suite ({} set)",
            crate::db::URL_VAR
        );
        return;
    }
    let cluster = Cluster::create();
    let buyer = TestBuyer::start(Reply::bid("10.00"), Reply::accept()).await;
    let exchange = exchange_toml("db_acquire_timeout_ms = 500", "tmax_ms = 1000");
    let (_dir, path) = write_config(&exchange, &[pinged_buyer("b1", &buyer, "")]);
    let env = vec![("PINGPOST_DATABASE_URL".to_string(), cluster.url())];
    let config = pingpost::config::Config::from_str_with_env(&path, &exchange, env).unwrap();
    let app = pingpost::startup::Application::build(config).await.unwrap();
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let flow = || flow_across(&http, &address, &address, SELLER_A_KEY);
    let ready = || async {
        http.get(format!("{address}/readyz"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };

    let (status, sale) = flow().await;
    assert_eq!(
        (status, sale["status"].as_str()),
        (200, Some("sold")),
        "{sale}"
    );
    assert_eq!(ready().await, 200);

    cluster.stop();
    for _ in 0..5 {
        let (status, body) = flow().await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["error"]["code"], "unavailable");
    }
    assert_eq!(ready().await, 503);

    cluster.start();
    let mut recovered = false;
    for _ in 0..50 {
        if flow().await.0 == 200 {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(recovered, "the exchange serves again without a restart");
    assert_eq!(ready().await, 200);

    // Nothing half-written: exactly the sales the clients saw, each balanced.
    let pool = sqlx::PgPool::connect(&cluster.url()).await.unwrap();
    let sales: i64 = sqlx::query_scalar("select count(*) from sale")
        .fetch_one(&pool)
        .await
        .unwrap();
    let unbalanced: i64 = sqlx::query_scalar("select count(*) from (select transaction_id from ledger_entry group by transaction_id having sum(amount) <> 0) t").fetch_one(&pool).await.unwrap();
    let orphans: i64 = sqlx::query_scalar("select count(*) from ping where status = 'sold' and lead_id not in (select lead_id from sale)").fetch_one(&pool).await.unwrap();
    assert_eq!((sales, unbalanced, orphans), (2, 0, 0));
    pool.close().await;
}
