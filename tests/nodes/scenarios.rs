//! Several exchange nodes as one: shared Redis and PostgreSQL, pings and posts on different
//! nodes, caps exact across them, rate limits shared, and a Redis restart survived.
//! Runs when both `PINGPOST_TEST_DATABASE_URL` and `PINGPOST_TEST_REDIS_URL` are set.

use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

use crate::helpers::*;

const REDIS_VAR: &str = "PINGPOST_TEST_REDIS_URL";

fn shared_services() -> Option<String> {
    match (std::env::var(crate::db::URL_VAR), std::env::var(REDIS_VAR)) {
        (Ok(_), Ok(redis)) => Some(redis),
        _ => {
            println!("skipped: needs {} and {REDIS_VAR}", crate::db::URL_VAR);
            None
        }
    }
}

fn unique_prefix() -> String {
    format!("pingpost-test-{:016x}:", rand::random::<u64>())
}

async fn sales_by_buyer(db: &TestDb) -> HashMap<String, usize> {
    let mut sales = HashMap::new();
    for (_, account, cents) in db.ledger_entries().await {
        if let (Some(buyer), true) = (account.strip_prefix("buyer:"), cents < 0) {
            *sales.entry(buyer.to_string()).or_insert(0) += 1;
        }
    }
    sales
}

fn capped_buyers(five: &TestBuyer, three: &TestBuyer, rest: &TestBuyer) -> Vec<(String, String)> {
    vec![
        pinged_buyer("five", five, "max_in_flight = 5000\ntimeout_ms = 5000\n[caps]\ntimezone = \"America/New_York\"\ndaily_count = 5"),
        pinged_buyer("three", three, "max_in_flight = 5000\ntimeout_ms = 5000\n[caps]\ndaily_spend = \"30.00\""),
        pinged_buyer("rest", rest, "max_in_flight = 5000\ntimeout_ms = 5000"),
    ]
}

#[tokio::test]
async fn three_nodes_sharing_redis_and_postgres_act_as_one_exchange() {
    let Some(redis) = shared_services() else {
        return;
    };
    let five = TestBuyer::start(Reply::bid("20.00"), Reply::accept()).await;
    let three = TestBuyer::start(Reply::bid("10.00"), Reply::accept()).await;
    let rest = TestBuyer::start(Reply::bid("5.00"), Reply::accept()).await;
    let (dir, path) = write_config(
        &exchange_toml("db_acquire_timeout_ms = 30000", "tmax_ms = 5000"),
        &capped_buyers(&five, &three, &rest),
    );
    let db = TestDb::fresh(dir.path()).await;
    let env = [
        ("PINGPOST_REDIS_URL", redis.clone()),
        ("PINGPOST_REDIS_KEY_PREFIX", unique_prefix()),
    ];
    let mut nodes = Vec::new();
    for _ in 0..3 {
        nodes.push(RealServer::start_with_env(&path, db.url(), &[], "warn", &env).await);
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(1000)
        .build()
        .unwrap();
    let addresses: Vec<String> = nodes.iter().map(|n| n.address.clone()).collect();

    // 1,000 flows at once, each pinging one node and posting to the next.
    let flows = (0..1000).map(|i| {
        let (ping_node, post_node) = (&addresses[i % 3], &addresses[(i + 1) % 3]);
        flow_across(&http, ping_node, post_node, SELLER_A_KEY)
    });
    let results = futures_util::future::join_all(flows).await;

    let failed: Vec<_> = results
        .iter()
        .filter(|(s, r)| *s != 200 || r["status"] != "sold")
        .take(3)
        .collect();
    assert!(
        failed.is_empty(),
        "every post succeeds on the node it reaches: {failed:?}"
    );
    let by_buyer = sales_by_buyer(&db).await;
    assert_eq!(by_buyer.get("five"), Some(&5), "{by_buyer:?}");
    assert_eq!(by_buyer.get("three"), Some(&3), "{by_buyer:?}");
    assert_eq!(by_buyer.get("rest"), Some(&992), "{by_buyer:?}");
    let mut sums: HashMap<String, i64> = HashMap::new();
    for (transaction, _, cents) in db.ledger_entries().await {
        *sums.entry(transaction).or_default() += cents;
    }
    assert_eq!(sums.len(), 1000);
    assert!(sums.values().all(|s| *s == 0));

    // Rate limits are shared: seller-slow (1/s, burst 2) is limited on every node.
    let mut statuses = Vec::new();
    for address in addresses.iter().chain(addresses.iter()) {
        let r = http
            .post(format!("{address}/v1/pings"))
            .bearer_auth(SELLER_SLOW_KEY)
            .json(&ping_body())
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        2,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        4,
        "{statuses:?}"
    );
    for address in &addresses {
        let r = http
            .post(format!("{address}/v1/pings"))
            .bearer_auth(SELLER_A_KEY)
            .json(&ping_body())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "another seller is served on every node");
    }
    for node in &mut nodes {
        node.kill();
    }
}

/// A Redis of the test's own, so restarting it disturbs no other test.
struct OwnRedis {
    port: u16,
    _dir: tempfile::TempDir,
}

impl OwnRedis {
    fn start() -> OwnRedis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let redis = OwnRedis {
            port,
            _dir: tempfile::tempdir().unwrap(),
        };
        redis.launch();
        redis
    }

    fn launch(&self) {
        let ok = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "yes",
            ])
            .arg("--dir")
            .arg(self._dir.path())
            .status()
            .expect("redis-server runs");
        assert!(ok.success());
        for _ in 0..100 {
            if self.cli(&["PING"]).is_some_and(|o| o.contains("PONG")) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server did not start");
    }

    fn cli(&self, args: &[&str]) -> Option<String> {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .ok()?;
        Some(String::from_utf8_lossy(&out.stdout).to_string())
    }

    /// A restart: everything in it is gone.
    fn stop(&self) {
        let _ = self.cli(&["SHUTDOWN", "NOSAVE"]);
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test]
async fn a_redis_restart_mid_run_never_lets_a_cap_pass() {
    if shared_services().is_none() {
        return;
    }
    let redis = OwnRedis::start();
    let five = TestBuyer::start(Reply::bid("20.00"), Reply::accept()).await;
    let three = TestBuyer::start(Reply::bid("10.00"), Reply::accept()).await;
    let rest = TestBuyer::start(Reply::bid("5.00"), Reply::accept()).await;
    let (dir, path) = write_config(
        &exchange_toml("db_acquire_timeout_ms = 30000", "tmax_ms = 2000"),
        &capped_buyers(&five, &three, &rest),
    );
    let db = TestDb::fresh(dir.path()).await;
    let env = [
        ("PINGPOST_REDIS_URL", redis.url()),
        ("PINGPOST_REDIS_KEY_PREFIX", unique_prefix()),
    ];
    let mut node_a = RealServer::start_with_env(&path, db.url(), &[], "warn", &env).await;
    let mut node_b = RealServer::start_with_env(&path, db.url(), &[], "warn", &env).await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let (a, b) = (node_a.address.clone(), node_b.address.clone());
    let ready = |node: String| {
        let http = http.clone();
        async move {
            http.get(format!("{node}/readyz"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };

    let first = futures_util::future::join_all((0..20).map(|i| {
        flow_across(
            &http,
            if i % 2 == 0 { &a } else { &b },
            if i % 2 == 0 { &b } else { &a },
            SELLER_A_KEY,
        )
    }))
    .await;
    assert!(first.iter().all(|(s, _)| *s == 200));
    assert_eq!(ready(a.clone()).await, 200);

    redis.stop();
    assert_eq!(ready(a.clone()).await, 503, "readiness reports Redis down");
    // While Redis is down pings still answer in time; capped buyers sit out.
    let (status, during) = flow_across(&http, &a, &b, SELLER_A_KEY).await;
    assert_eq!(status, 200, "{during}");
    redis.launch();
    let mut recovered = false;
    for _ in 0..50 {
        if ready(b.clone()).await == 200 {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recovered, "readiness recovers by itself when Redis is back");

    // Redis came back empty: the counters are rebuilt from the database.
    let after = futures_util::future::join_all((0..40).map(|i| {
        flow_across(
            &http,
            if i % 2 == 0 { &a } else { &b },
            if i % 2 == 0 { &b } else { &a },
            SELLER_A_KEY,
        )
    }))
    .await;
    assert!(
        after
            .iter()
            .all(|(s, r)| *s == 200 && r["status"] == "sold"),
        "{:?}",
        after
            .iter()
            .find(|(s, r)| *s != 200 || r["status"] != "sold")
    );
    let by_buyer = sales_by_buyer(&db).await;
    assert_eq!(by_buyer.get("five"), Some(&5), "{by_buyer:?}");
    assert_eq!(by_buyer.get("three"), Some(&3), "{by_buyer:?}");
    node_a.kill();
    node_b.kill();
}
