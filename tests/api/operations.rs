//! Operating the exchange: metrics, admin changes, reloads, graceful shutdown, PII-free logs.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::*;

/// The value of one series in the Prometheus text, 0 when absent.
fn series(text: &str, name: &str, labels: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains(labels))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn metrics_count_bids_posts_sales_and_revenue() {
    // Buyer ids unique to this test: the registry is shared by every exchange in the process.
    let winner = TestBuyer::start(Reply::bid("12.00"), Reply::reject()).await;
    let runner_up = TestBuyer::start(Reply::bid("10.00"), Reply::accept()).await;
    let failing = TestBuyer::start(Reply::raw(500, "oops"), Reply::accept()).await;
    let slow = TestBuyer::start(
        Reply::bid("50.00").after(Duration::from_secs(2)),
        Reply::accept(),
    )
    .await;
    let app = spawn_app(&[
        pinged_buyer("m-winner", &winner, ""),
        pinged_buyer("m-runner-up", &runner_up, ""),
        pinged_buyer("m-failing", &failing, ""),
        pinged_buyer("m-slow", &slow, "timeout_ms = 200"),
    ])
    .await;
    let metrics = || async {
        app.http
            .get(format!("{}/metrics", app.address))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let before = metrics().await;

    let (_, ping) = app.ping(SELLER_A_KEY, &ping_body()).await;
    app.send(
        "/v1/posts",
        SELLER_A_KEY,
        &json!({"ping_id": ping["ping_id"], "lead": full_lead()}),
    )
    .await;
    let after = metrics().await;

    let delta =
        |name: &str, labels: &str| series(&after, name, labels) - series(&before, name, labels);
    assert_eq!(
        delta(
            "pingpost_bid_requests_total",
            r#"buyer="m-winner",outcome="bid""#
        ),
        1.0
    );
    assert_eq!(
        delta(
            "pingpost_bid_requests_total",
            r#"buyer="m-failing",outcome="error""#
        ),
        1.0
    );
    assert_eq!(
        delta(
            "pingpost_bid_requests_total",
            r#"buyer="m-slow",outcome="timeout""#
        ),
        1.0
    );
    assert_eq!(
        delta(
            "pingpost_posts_total",
            r#"buyer="m-winner",outcome="rejected""#
        ),
        1.0
    );
    assert_eq!(
        delta(
            "pingpost_posts_total",
            r#"buyer="m-runner-up",outcome="accepted""#
        ),
        1.0
    );
    assert_eq!(delta("pingpost_sales_total", r#"buyer="m-runner-up""#), 1.0);
    assert_eq!(
        delta("pingpost_revenue_cents_total", r#"buyer="m-runner-up""#),
        1000.0
    );
    assert_eq!(
        delta("pingpost_bid_latency_seconds_count", r#"buyer="m-winner""#),
        1.0
    );
    assert!(delta("pingpost_auctions_total", r#"outcome="offer""#) >= 1.0);
    // The writes this flow waited for, timed (other tests' flows may add to the counts).
    for write in ["ping_log", "claim", "sale"] {
        let count = delta(
            "pingpost_store_write_seconds_count",
            &format!(r#"write="{write}""#),
        );
        assert!(count >= 1.0, "{write}: {count}");
    }
    assert!(after.contains(r#"pingpost_store_write_seconds_bucket{write="sale",le="0.0001"}"#));
    assert!(after.contains("pingpost_auction_latency_seconds_bucket"));
    for pii in ["Ana", "Diaz", "ana@example.com", "3055550100"] {
        assert!(!after.contains(pii));
    }
}

#[tokio::test]
async fn an_admin_pauses_and_resumes_a_buyer() {
    let buyer = TestBuyer::start(Reply::bid("9.00"), Reply::accept()).await;
    let app = spawn_app(&[pinged_buyer("b1", &buyer, "")]).await;

    let (forbidden, _) = app
        .send("/v1/admin/buyers/b1/pause", SELLER_A_KEY, &json!({}))
        .await;
    let (unknown, _) = app
        .send("/v1/admin/buyers/nobody/pause", ADMIN_KEY, &json!({}))
        .await;
    let (paused, body) = app
        .send("/v1/admin/buyers/b1/pause", ADMIN_KEY, &json!({}))
        .await;
    let (_, while_paused) = app.ping(SELLER_A_KEY, &ping_body()).await;
    let requests_while_paused = buyer.bids().len();
    let (resumed, _) = app
        .send("/v1/admin/buyers/b1/resume", ADMIN_KEY, &json!({}))
        .await;
    let (_, after) = app.ping(SELLER_A_KEY, &ping_body()).await;

    assert_eq!((forbidden, unknown, paused, resumed), (403, 404, 200, 200));
    assert_eq!(body, json!({"buyer_id": "b1", "status": "paused"}));
    assert_eq!(while_paused["status"], "no_bid");
    assert_eq!(
        requests_while_paused, 0,
        "a paused buyer receives no bid request"
    );
    assert_eq!(after["status"], "offer");
}

#[tokio::test]
async fn a_reload_adds_a_buyer_and_a_broken_file_changes_nothing() {
    let first = TestBuyer::start(Reply::bid("5.00"), Reply::accept()).await;
    let second = TestBuyer::start(Reply::bid("9.00"), Reply::accept()).await;
    let app = spawn_app(&[pinged_buyer("first", &first, "")]).await;
    let buyers_dir = app.dir.path().join("buyers");

    let (_, new_buyer) = pinged_buyer("second", &second, "");
    std::fs::write(buyers_dir.join("second.toml"), new_buyer).unwrap();
    let (status, body) = app.send("/v1/admin/reload", ADMIN_KEY, &json!({})).await;
    assert_eq!((status, body["buyers"].as_u64()), (200, Some(2)), "{body}");
    let (_, ping) = app.ping(SELLER_A_KEY, &ping_body()).await;
    assert_eq!(
        ping["payout"], "7.20",
        "the new buyer is eligible on the next ping"
    );

    let (_, broken) = pinged_buyer("third", &second, "max_bid = \"lots\"");
    std::fs::write(buyers_dir.join("third.toml"), broken).unwrap();
    std::fs::remove_file(buyers_dir.join("second.toml")).unwrap();
    let (status, body) = app.send("/v1/admin/reload", ADMIN_KEY, &json!({})).await;
    assert_eq!(status, 422);
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("third.toml") && message.contains("max_bid"),
        "{message}"
    );
    let (_, ping) = app.ping(SELLER_A_KEY, &ping_body()).await;
    assert_eq!(
        ping["payout"], "7.20",
        "the running configuration stayed as it was"
    );
    assert_eq!(second.bids().len(), 2);
}

#[tokio::test]
async fn sighup_reloads_the_buyers_and_sigterm_finishes_in_flight_work_and_exits_0() {
    let buyer = TestBuyer::start(
        Reply::bid("10.00"),
        Reply::accept().after(Duration::from_millis(20)),
    )
    .await;
    let late = TestBuyer::start(Reply::bid("30.00"), Reply::accept()).await;
    let (dir, path) = write_config(
        &exchange_toml("", "tmax_ms = 1000"),
        &[pinged_buyer("b1", &buyer, "")],
    );
    let db = TestDb::fresh(dir.path()).await;
    let server = RealServer::start(&path, db.url(), &[], "info").await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();

    // SIGHUP: a buyer file added on disk becomes eligible without a restart.
    std::fs::write(
        dir.path().join("buyers/late.toml"),
        pinged_buyer("late", &late, "").1,
    )
    .unwrap();
    server.signal("HUP");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ping: Value = http
        .post(format!("{}/v1/pings", server.address))
        .bearer_auth(SELLER_A_KEY)
        .json(&ping_body())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ping["payout"], "24.00", "{ping}");

    // SIGTERM during a stream of pings and posts.
    let sold = Arc::new(Mutex::new(Vec::new()));
    let streams: Vec<_> = (0..4)
        .map(|_| tokio::spawn(post_stream(server.address.clone(), sold.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(800)).await;
    server.signal("TERM");
    let status = tokio::task::spawn_blocking(move || {
        let mut server = server;
        server.child.wait().unwrap()
    })
    .await
    .unwrap();
    for stream in streams {
        stream.await.unwrap();
    }

    assert_eq!(status.code(), Some(0), "a graceful stop exits 0");
    let reported = sold.lock().unwrap().clone();
    assert!(!reported.is_empty());
    let sales: std::collections::HashSet<String> = db
        .rows("select lead_id from sale", "select lead_id from sale")
        .await
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    for lead_id in &reported {
        assert!(
            sales.contains(lead_id),
            "{lead_id} was reported sold but is not in the books"
        );
    }
    let mut sums = std::collections::HashMap::new();
    for (transaction, _, cents) in db.ledger_entries().await {
        *sums.entry(transaction).or_insert(0i64) += cents;
    }
    assert_eq!(sums.len(), sales.len());
    assert!(sums.values().all(|s| *s == 0));
}

#[tokio::test]
async fn logs_of_pings_posts_and_returns_carry_no_pii() {
    let buyer = TestBuyer::start(Reply::bid("10.00"), Reply::accept()).await;
    let rejecting = TestBuyer::start(Reply::bid("11.00"), Reply::reject()).await;
    let (dir, path) = write_config(
        &exchange_toml("", "tmax_ms = 1000"),
        &[
            pinged_buyer("b1", &buyer, ""),
            pinged_buyer("b2", &rejecting, ""),
        ],
    );
    let db = TestDb::fresh(dir.path()).await;
    let server = RealServer::start(&path, db.url(), &["--log-format", "json"], "debug").await;
    let http = reqwest::Client::new();
    let url = |p: &str| format!("{}{p}", server.address);

    let ping: Value = http
        .post(url("/v1/pings"))
        .bearer_auth(SELLER_A_KEY)
        .json(&ping_body())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sale: Value = http
        .post(url("/v1/posts"))
        .bearer_auth(SELLER_A_KEY)
        .json(&json!({"ping_id": ping["ping_id"], "lead": full_lead()}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let returned = http
        .post(url("/v1/returns"))
        .bearer_auth(buyer_key("b1"))
        .json(&json!({"lead_id": sale["lead_id"], "reason": "bad_phone"}))
        .send()
        .await
        .unwrap();
    assert_eq!(returned.status(), 200);
    // Failures too: PII in a ping, a bad email in a post, a direct post.
    let mut pii_ping = ping_lead();
    pii_ping["email"] = json!("ana@example.com");
    http.post(url("/v1/pings"))
        .bearer_auth(SELLER_A_KEY)
        .json(&json!({"vertical": "auto_insurance", "lead": pii_ping}))
        .send()
        .await
        .unwrap();
    http.post(url("/v1/leads"))
        .bearer_auth(SELLER_A_KEY)
        .json(&json!({"vertical": "auto_insurance", "lead": full_lead()}))
        .send()
        .await
        .unwrap();
    server.signal("TERM");
    let _ = tokio::task::spawn_blocking(move || {
        let mut server = server;
        server.child.wait()
    })
    .await;
    let log = std::fs::read_to_string(
        dir.path().join(
            std::fs::read_dir(dir.path())
                .unwrap()
                .filter_map(|e| e.ok())
                .map(|e| e.file_name())
                .find(|n| n.to_string_lossy().starts_with("server-"))
                .unwrap(),
        ),
    )
    .unwrap();

    assert!(
        log.contains(ping["ping_id"].as_str().unwrap()),
        "the ping's span carries its id"
    );
    assert!(
        log.lines().all(|l| l.is_empty() || l.starts_with('{')),
        "every line is JSON"
    );
    for pii in [
        "Ana",
        "Diaz",
        "ana@example.com",
        "555-0100",
        "5550100",
        "Ocean",
    ] {
        assert!(!log.contains(pii), "the log holds {pii}");
    }
}
