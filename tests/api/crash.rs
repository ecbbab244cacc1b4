//! Crash safety: kill -9 the real server during concurrent posts, restart, check the books.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test]
async fn kill_9_during_concurrent_posts_loses_no_reported_sale_and_keeps_the_books_balanced() {
    // Arrange: two buyers that take a little time to accept, a server on a file database.
    let b1 = TestBuyer::start(
        Reply::bid("10.00"),
        Reply::accept().after(Duration::from_millis(15)),
    )
    .await;
    let b2 = TestBuyer::start(Reply::bid("8.00"), Reply::accept()).await;
    let (dir, path) = write_config(
        &exchange_toml("", "tmax_ms = 1000"),
        &[pinged_buyer("b1", &b1, ""), pinged_buyer("b2", &b2, "")],
    );
    let db = TestDb::fresh(dir.path()).await;
    let database_url = db.url().to_string();
    let mut server = RealServer::start(&path, &database_url, &[], "warn").await;

    // Act: 8 streams of ping + post, then kill -9 while they run.
    let sold = Arc::new(Mutex::new(Vec::new()));
    let streams: Vec<_> = (0..8)
        .map(|_| tokio::spawn(post_stream(server.address.clone(), sold.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.kill();
    for stream in streams {
        stream.await.unwrap();
    }
    let reported: Vec<String> = sold.lock().unwrap().clone();
    assert!(
        reported.len() >= 8,
        "the streams made sales before the kill ({})",
        reported.len()
    );

    // Restart on the same database.
    let server = RealServer::start(&path, &database_url, &[], "warn").await;

    // Assert: every sale a client saw is in the ledger; every transaction balances;
    // each sale has exactly its three entries; no ping was sold twice.
    let sales: HashSet<String> = db
        .rows("select lead_id from sale", "select lead_id from sale")
        .await
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    for lead_id in &reported {
        assert!(
            sales.contains(lead_id),
            "reported sale {lead_id} is missing"
        );
    }
    let mut sums: HashMap<String, (i64, i64)> = HashMap::new();
    for (transaction, _, cents) in db.ledger_entries().await {
        let entry = sums.entry(transaction).or_default();
        entry.0 += cents;
        entry.1 += 1;
    }
    assert_eq!(sums.len(), sales.len(), "one transaction per sale");
    assert!(
        sums.values().all(|(sum, count)| *sum == 0 && *count == 3),
        "{sums:?}"
    );
    let count = |sql: &'static str| {
        let db = &db;
        async move {
            db.rows(sql, sql).await[0][0]
                .parse::<usize>()
                .unwrap_or_else(|_| panic!("{sql}"))
        }
    };
    assert_eq!(
        count("select cast(count(distinct ping_id) as text) from sale").await,
        sales.len()
    );
    assert_eq!(
        count("select cast(count(*) as text) from ledger_transaction").await,
        sales.len()
    );

    // A post cut off by the kill can be posted again once its lease ends, and settles.
    let posting = "select id from ping where post_state = 'posting'";
    let interrupted: Vec<String> = db
        .rows(posting, posting)
        .await
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    if let Some(ping_id) = interrupted.first() {
        tokio::time::sleep(Duration::from_secs(9)).await;
        let http = reqwest::Client::new();
        let response = http
            .post(format!("{}/v1/posts", server.address))
            .bearer_auth(SELLER_A_KEY)
            .json(&json!({"ping_id": ping_id, "lead": full_lead()}))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap();
        // Sold or unsold now, expired, or (if the killed server's commit landed after all) the
        // first result under another body: each a clear answer, never a 5xx or a second sale.
        let clear = status == 200
            || status == 410
            || (status == 409 && body["error"]["code"] == "already_posted");
        assert!(clear, "{status} {body}");
    }
    let mut server = server;
    server.kill();
}
