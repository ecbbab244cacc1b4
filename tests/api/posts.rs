//! Posting: delivery with fallback, the post's error cases, exactly-once sales, dedupe.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::*;

async fn offer(app: &TestApp, key: &str) -> String {
    let (status, body) = app.ping(key, &ping_body()).await;
    assert_eq!(body["status"], "offer", "{status} {body}");
    body["ping_id"].as_str().unwrap().to_string()
}

fn post_body(ping_id: &str, lead: Value) -> Value {
    json!({"ping_id": ping_id, "lead": lead})
}

#[tokio::test]
async fn a_rejecting_winner_falls_back_to_the_runner_up_at_its_own_price() {
    let winner = TestBuyer::start(Reply::bid("15.00"), Reply::reject()).await;
    let runner_up = TestBuyer::start(Reply::bid("12.00"), Reply::accept()).await;
    let app = spawn_app(&[
        pinged_buyer("winner", &winner, ""),
        pinged_buyer("runner-up", &runner_up, ""),
    ])
    .await;
    let ping_id = offer(&app, SELLER_A_KEY).await;

    let (status, sale) = app
        .send("/v1/posts", SELLER_A_KEY, &post_body(&ping_id, full_lead()))
        .await;

    assert_eq!(status, 200, "{sale}");
    assert_eq!(sale["status"], "sold");
    assert_eq!(
        sale["payout"], "9.60",
        "12.00 × 0.80, not the offer's 12.00"
    );
    assert_eq!(winner.posts().len(), 1);
    assert_eq!(runner_up.posts().len(), 1);
    assert_eq!(runner_up.posts()[0].body["price"], "12.00");
    let ledger = ledger_entries(&app).await;
    assert_eq!(
        ledger
            .iter()
            .map(|(_, account, cents)| (account.as_str(), *cents))
            .collect::<Vec<_>>(),
        [
            ("buyer:runner-up", -1200),
            ("seller:seller-a", 960),
            ("exchange:revenue", 240)
        ]
    );
    let view: Value = app
        .get(&format!("/v1/pings/{ping_id}"), SELLER_A_KEY)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (view["status"].as_str(), view["payout"].as_str()),
        (Some("sold"), Some("9.60"))
    );
    assert_eq!(view["lead_id"], sale["lead_id"]);
}

#[tokio::test]
async fn timeouts_errors_and_garbage_count_as_rejections() {
    let slow = TestBuyer::start(
        Reply::bid("20.00"),
        Reply::accept().after(Duration::from_millis(900)),
    )
    .await;
    let failing = TestBuyer::start(
        Reply::bid("19.00"),
        Reply::raw(500, r#"{"accepted": true}"#),
    )
    .await;
    let garbage = TestBuyer::start(Reply::bid("18.00"), Reply::raw(200, "<html>ok</html>")).await;
    let good = TestBuyer::start(Reply::bid("17.00"), Reply::accept()).await;
    let exchange = exchange_toml("", "tmax_ms = 1000\nmax_post_attempts = 4");
    let app = spawn_app_with(
        &exchange,
        &[
            pinged_buyer("slow", &slow, "timeout_ms = 300"),
            pinged_buyer("failing", &failing, ""),
            pinged_buyer("garbage", &garbage, ""),
            pinged_buyer("good", &good, ""),
        ],
    )
    .await;
    let ping_id = offer(&app, SELLER_A_KEY).await;

    let (_, sale) = app
        .send("/v1/posts", SELLER_A_KEY, &post_body(&ping_id, full_lead()))
        .await;

    assert_eq!(sale["status"], "sold", "{sale}");
    assert_eq!(sale["payout"], "13.60");
    let ledger = ledger_entries(&app).await;
    assert_eq!(ledger.len(), 3, "one sale, to the one buyer that accepted");
    assert_eq!(ledger[0].1, "buyer:good");
}

#[tokio::test]
async fn posting_stops_after_max_post_attempts_and_reports_unsold() {
    let buyers: Vec<TestBuyer> = futures_util::future::join_all(
        ["30.00", "20.00", "10.00"]
            .map(|price| TestBuyer::start(Reply::bid(price), Reply::reject())),
    )
    .await;
    let exchange = exchange_toml("", "tmax_ms = 1000\nmax_post_attempts = 2");
    let files: Vec<_> = buyers
        .iter()
        .enumerate()
        .map(|(i, b)| pinged_buyer(&format!("b{i}"), b, ""))
        .collect();
    let app = spawn_app_with(&exchange, &files).await;
    let ping_id = offer(&app, SELLER_A_KEY).await;

    let (status, result) = app
        .send("/v1/posts", SELLER_A_KEY, &post_body(&ping_id, full_lead()))
        .await;

    assert_eq!(status, 200);
    assert_eq!(
        result,
        json!({"ping_id": ping_id, "status": "unsold", "reason": "all_buyers_rejected"})
    );
    assert_eq!(
        (
            buyers[0].posts().len(),
            buyers[1].posts().len(),
            buyers[2].posts().len()
        ),
        (1, 1, 0)
    );
    assert!(ledger_entries(&app).await.is_empty(), "no buyer is billed");
    let view: Value = app
        .get(&format!("/v1/pings/{ping_id}"), SELLER_A_KEY)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(view["status"], "unsold");
}

#[tokio::test]
async fn a_post_for_an_unknown_or_foreign_ping_is_404() {
    let buyer = TestBuyer::start(Reply::bid("10.00"), Reply::accept()).await;
    let app = spawn_app(&[pinged_buyer("b1", &buyer, "")]).await;
    let ping_id = offer(&app, SELLER_A_KEY).await;

    let (foreign, _) = app
        .send("/v1/posts", SELLER_B_KEY, &post_body(&ping_id, full_lead()))
        .await;
    let (unknown, body) = app
        .send(
            "/v1/posts",
            SELLER_A_KEY,
            &post_body("ping_0000000000", full_lead()),
        )
        .await;

    assert_eq!((foreign, unknown), (404, 404));
    assert_eq!(body["error"]["code"], "ping_not_found");
    assert!(buyer.posts().is_empty());
}

#[tokio::test]
async fn an_expired_offer_is_410() {
    let buyer = TestBuyer::start(Reply::bid("10.00"), Reply::accept()).await;
    let app = spawn_app(&[pinged_buyer("b1", &buyer, "")]).await;
    let ping_id = offer(&app, SELLER_A_KEY).await;
    app.exchange.advance_clock(chrono::Duration::seconds(121));

    let (status, body) = app
        .send("/v1/posts", SELLER_A_KEY, &post_body(&ping_id, full_lead()))
        .await;
    let view: Value = app
        .get(&format!("/v1/pings/{ping_id}"), SELLER_A_KEY)
        .await
        .json()
        .await
        .unwrap();

    assert_eq!(status, 410);
    assert_eq!(body["error"]["code"], "offer_expired");
    assert_eq!(view["status"], "expired");
    assert!(buyer.posts().is_empty());
}

#[tokio::test]
async fn a_mismatched_or_invalid_lead_is_422_and_the_offer_still_stands() {
    let buyer = TestBuyer::start(Reply::bid("10.00"), Reply::accept()).await;
    let app = spawn_app(&[pinged_buyer("b1", &buyer, "")]).await;
    let ping_id = offer(&app, SELLER_A_KEY).await;

    let mut other_state = full_lead();
    other_state["state"] = json!("GA");
    let (status, body) = app
        .send("/v1/posts", SELLER_A_KEY, &post_body(&ping_id, other_state))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("lead_mismatch"))
    );
    assert_eq!(body["error"]["fields"][0]["field"], "state");

    let mut dropped = full_lead();
    dropped.as_object_mut().unwrap().remove("age");
    let (status, body) = app
        .send("/v1/posts", SELLER_A_KEY, &post_body(&ping_id, dropped))
        .await;
    assert_eq!(
        (status, body["error"]["fields"][0]["field"].as_str()),
        (422, Some("age"))
    );

    let mut bad_email = full_lead();
    bad_email["email"] = json!("ana-at-example");
    let (status, body) = app
        .send("/v1/posts", SELLER_A_KEY, &post_body(&ping_id, bad_email))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("validation_failed"))
    );
    assert_eq!(body["error"]["fields"][0]["field"], "email");
    assert!(!body.to_string().contains("ana-at-example"));
    assert!(buyer.posts().is_empty());

    let (status, sale) = app
        .send("/v1/posts", SELLER_A_KEY, &post_body(&ping_id, full_lead()))
        .await;
    assert_eq!((status, sale["status"].as_str()), (200, Some("sold")));
}

#[tokio::test]
async fn a_repeated_post_replays_and_a_different_body_is_409() {
    let buyer = TestBuyer::start(Reply::bid("10.00"), Reply::accept()).await;
    let app = spawn_app(&[pinged_buyer("b1", &buyer, "")]).await;
    let ping_id = offer(&app, SELLER_A_KEY).await;

    let (_, first) = app
        .send("/v1/posts", SELLER_A_KEY, &post_body(&ping_id, full_lead()))
        .await;
    let (status, again) = app
        .send("/v1/posts", SELLER_A_KEY, &post_body(&ping_id, full_lead()))
        .await;
    let mut changed = full_lead();
    changed["first_name"] = json!("Ann");
    let (conflict, body) = app
        .send("/v1/posts", SELLER_A_KEY, &post_body(&ping_id, changed))
        .await;

    assert_eq!(status, 200);
    assert_eq!(first, again);
    assert_eq!(conflict, 409);
    assert_eq!(body["error"]["code"], "already_posted");
    assert_eq!(buyer.posts().len(), 1, "never a second delivery");
    assert_eq!(ledger_entries(&app).await.len(), 3, "never a second sale");
}

#[tokio::test]
async fn twenty_concurrent_identical_posts_make_exactly_one_sale() {
    let buyer = TestBuyer::start(
        Reply::bid("10.00"),
        Reply::accept().after(Duration::from_millis(200)),
    )
    .await;
    let app = spawn_app(&[pinged_buyer("b1", &buyer, "")]).await;
    let ping_id = offer(&app, SELLER_A_KEY).await;
    let body = post_body(&ping_id, full_lead());

    let results =
        futures_util::future::join_all((0..20).map(|_| app.send("/v1/posts", SELLER_A_KEY, &body)))
            .await;

    for (status, result) in &results {
        assert_eq!(*status, 200, "{result}");
        assert_eq!(result, &results[0].1, "every caller sees the one result");
    }
    assert_eq!(results[0].1["status"], "sold");
    assert_eq!(buyer.posts().len(), 1);
    let ledger = ledger_entries(&app).await;
    let transactions: std::collections::HashSet<_> =
        ledger.iter().map(|(t, _, _)| t.clone()).collect();
    assert_eq!(transactions.len(), 1);
}

#[tokio::test]
async fn dedupe_sends_a_repeat_phone_in_another_format_to_another_buyer() {
    let deduping = TestBuyer::start(Reply::bid("20.00"), Reply::accept()).await;
    let other = TestBuyer::start(Reply::bid("10.00"), Reply::accept()).await;
    let app = spawn_app(&[
        pinged_buyer("deduping", &deduping, "dedupe_days = 30"),
        pinged_buyer("other", &other, ""),
    ])
    .await;

    let first_id = offer(&app, SELLER_A_KEY).await;
    let (_, first) = app
        .send(
            "/v1/posts",
            SELLER_A_KEY,
            &post_body(&first_id, full_lead()),
        )
        .await;
    let second_id = offer(&app, SELLER_A_KEY).await;
    let mut same_person = full_lead();
    same_person["phone"] = json!("+1 305.555.0100");
    same_person["email"] = json!("someone.else@example.com");
    let (_, second) = app
        .send(
            "/v1/posts",
            SELLER_A_KEY,
            &post_body(&second_id, same_person),
        )
        .await;
    let third_id = offer(&app, SELLER_A_KEY).await;
    let mut same_email = full_lead();
    same_email["phone"] = json!("2125550199");
    same_email["email"] = json!("ANA@Example.COM");
    let (_, third) = app
        .send("/v1/posts", SELLER_A_KEY, &post_body(&third_id, same_email))
        .await;

    assert_eq!(first["payout"], "16.00");
    assert_eq!(
        second["payout"], "8.00",
        "the repeat phone went to the other buyer"
    );
    assert_eq!(
        third["payout"], "8.00",
        "the repeat email (any case) went to the other buyer"
    );
    assert_eq!(deduping.posts().len(), 1);
    assert_eq!(other.posts().len(), 2);
    // Dedupe keys are keyed hashes, never the phone or email in clear.
    let dump = database_dump(&app).await;
    for pii in ["3055550100", "ana@example.com", "2125550199"] {
        assert!(!dump.contains(pii), "the database holds {pii} in clear");
    }
}

#[tokio::test]
async fn a_direct_post_validates_first_then_auctions_and_delivers() {
    let buyer = TestBuyer::start(Reply::bid("10.00"), Reply::accept()).await;
    let app = spawn_app(&[pinged_buyer("b1", &buyer, "")]).await;

    let mut missing_phone = full_lead();
    missing_phone.as_object_mut().unwrap().remove("phone");
    let (status, body) = app
        .send(
            "/v1/leads",
            SELLER_A_KEY,
            &json!({"vertical": "auto_insurance", "lead": missing_phone}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["fields"][0]["field"].as_str()),
        (422, Some("phone"))
    );
    assert!(
        buyer.bids().is_empty(),
        "no bid request before the full lead is valid"
    );

    let (status, sale) = app
        .send(
            "/v1/leads",
            SELLER_A_KEY,
            &json!({"vertical": "auto_insurance", "lead": full_lead()}),
        )
        .await;
    assert_eq!(status, 200, "{sale}");
    assert_eq!(sale["status"], "sold");
    assert_eq!(sale["payout"], "8.00");
    assert!(sale["ping_id"].as_str().unwrap().starts_with("ping_"));
    assert!(sale["lead_id"].as_str().unwrap().starts_with("lead_"));
}
