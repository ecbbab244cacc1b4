//! The books: balanced sales, exact returns, statements from the ledger.

use serde_json::{json, Value};

use crate::helpers::*;

/// One sale at 15.00 to "b1" from seller-a (share 0.80): returns its lead id.
async fn sell(app: &TestApp) -> String {
    let (_, ping) = app.ping(SELLER_A_KEY, &ping_body()).await;
    let (_, sale) = app
        .send(
            "/v1/posts",
            SELLER_A_KEY,
            &json!({"ping_id": ping["ping_id"], "lead": full_lead()}),
        )
        .await;
    assert_eq!(sale["status"], "sold", "{sale}");
    sale["lead_id"].as_str().unwrap().to_string()
}

async fn books_app() -> (TestApp, TestBuyer, TestBuyer) {
    let b1 = TestBuyer::start(Reply::bid("15.00"), Reply::accept()).await;
    let b2 = TestBuyer::start(Reply::bid("5.00"), Reply::accept()).await;
    let app = spawn_app(&[pinged_buyer("b1", &b1, ""), pinged_buyer("b2", &b2, "")]).await;
    (app, b1, b2)
}

fn today() -> String {
    chrono::Utc::now().format("%Y-%m-%d").to_string()
}

#[tokio::test]
async fn every_ledger_transaction_balances() {
    let (app, _, _) = books_app().await;
    for _ in 0..5 {
        sell(&app).await;
    }
    let lead = sell(&app).await;
    app.send(
        "/v1/returns",
        &buyer_key("b1"),
        &json!({"lead_id": lead, "reason": "bad_phone"}),
    )
    .await;

    let mut sums = std::collections::HashMap::new();
    for (transaction, _, cents) in ledger_entries(&app).await {
        *sums.entry(transaction).or_insert(0i64) += cents;
    }
    assert_eq!(sums.len(), 7);
    assert!(sums.values().all(|sum| *sum == 0), "{sums:?}");
}

#[tokio::test]
async fn a_return_reverses_the_sale_exactly() {
    let (app, _, _) = books_app().await;
    let lead_id = sell(&app).await;

    let (status, body) = app
        .send(
            "/v1/returns",
            &buyer_key("b1"),
            &json!({"lead_id": lead_id, "reason": "bad_phone"}),
        )
        .await;

    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"lead_id": lead_id, "status": "returned", "refund": "15.00"})
    );
    let entries: Vec<(String, i64)> = ledger_entries(&app)
        .await
        .into_iter()
        .map(|(_, a, c)| (a, c))
        .collect();
    let expected = [
        ("buyer:b1", -1500),
        ("seller:seller-a", 1200),
        ("exchange:revenue", 300),
        ("buyer:b1", 1500),
        ("seller:seller-a", -1200),
        ("exchange:revenue", -300),
    ];
    assert_eq!(entries, expected.map(|(a, c)| (a.to_string(), c)));
}

#[tokio::test]
async fn a_second_return_is_409_even_when_concurrent() {
    let (app, _, _) = books_app().await;
    let lead_id = sell(&app).await;
    let body = json!({"lead_id": lead_id, "reason": "bad_phone"});
    let key = buyer_key("b1");

    let results =
        futures_util::future::join_all((0..8).map(|_| app.send("/v1/returns", &key, &body))).await;

    let mut statuses: Vec<u16> = results.iter().map(|(s, _)| *s).collect();
    statuses.sort();
    assert_eq!(statuses, [200, 409, 409, 409, 409, 409, 409, 409]);
    let conflict = results.iter().find(|(s, _)| *s == 409).unwrap();
    assert_eq!(conflict.1["error"]["code"], "already_returned");
    assert_eq!(
        ledger_entries(&app).await.len(),
        6,
        "one sale, one reversal"
    );
}

#[tokio::test]
async fn only_the_buying_buyer_can_return_and_only_in_the_window() {
    let (app, _, _) = books_app().await;
    let lead_id = sell(&app).await;

    let (other, body) = app
        .send(
            "/v1/returns",
            &buyer_key("b2"),
            &json!({"lead_id": lead_id, "reason": "x"}),
        )
        .await;
    assert_eq!(
        (other, body["error"]["code"].as_str()),
        (404, Some("lead_not_found"))
    );
    let (unknown, _) = app
        .send(
            "/v1/returns",
            &buyer_key("b1"),
            &json!({"lead_id": "lead_000", "reason": "x"}),
        )
        .await;
    assert_eq!(unknown, 404);
    let (missing_reason, _) = app
        .send(
            "/v1/returns",
            &buyer_key("b1"),
            &json!({"lead_id": lead_id}),
        )
        .await;
    assert_eq!(missing_reason, 422);

    // Seven days are allowed; a return on day eight is too late.
    app.exchange
        .advance_clock(chrono::Duration::days(7) + chrono::Duration::minutes(1));
    let (late, body) = app
        .send(
            "/v1/returns",
            &buyer_key("b1"),
            &json!({"lead_id": lead_id, "reason": "x"}),
        )
        .await;
    assert_eq!(
        (late, body["error"]["code"].as_str()),
        (422, Some("return_window_passed"))
    );
    assert_eq!(ledger_entries(&app).await.len(), 3);
}

#[tokio::test]
async fn returns_can_be_turned_off() {
    let b1 = TestBuyer::start(Reply::bid("15.00"), Reply::accept()).await;
    let exchange = exchange_toml("", "tmax_ms = 1000")
        .replace("return_window_days = 7", "return_window_days = 0");
    let app = spawn_app_with(&exchange, &[pinged_buyer("b1", &b1, "")]).await;
    let lead_id = sell(&app).await;

    let (status, body) = app
        .send(
            "/v1/returns",
            &buyer_key("b1"),
            &json!({"lead_id": lead_id, "reason": "x"}),
        )
        .await;

    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("returns_disabled"))
    );
}

#[tokio::test]
async fn statements_show_sales_and_returns_with_their_net() {
    let (app, _, _) = books_app().await;
    let returned = sell(&app).await;
    let kept = sell(&app).await;
    app.send(
        "/v1/returns",
        &buyer_key("b1"),
        &json!({"lead_id": returned, "reason": "bad_phone"}),
    )
    .await;
    let range = format!("from={}&to={}", today(), today());

    let buyer: Value = app
        .get(
            &format!("/v1/buyers/me/statement?{range}"),
            &buyer_key("b1"),
        )
        .await
        .json()
        .await
        .unwrap();
    let seller: Value = app
        .get(&format!("/v1/sellers/me/statement?{range}"), SELLER_A_KEY)
        .await
        .json()
        .await
        .unwrap();

    assert_eq!(buyer["account"], "buyer:b1");
    let lines: Vec<(&str, &str, &str)> = buyer["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["kind"].as_str().unwrap(),
                l["lead_id"].as_str().unwrap(),
                l["amount"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        lines,
        [
            ("sale", returned.as_str(), "-15.00"),
            ("sale", kept.as_str(), "-15.00"),
            ("return", returned.as_str(), "15.00")
        ]
    );
    assert_eq!(buyer["total"], "-15.00");
    assert_eq!(seller["account"], "seller:seller-a");
    assert_eq!(seller["lines"].as_array().unwrap().len(), 3);
    assert_eq!(seller["total"], "12.00");
    // Another buyer's statement is its own, and empty.
    let b2: Value = app
        .get(
            &format!("/v1/buyers/me/statement?{range}"),
            &buyer_key("b2"),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (b2["lines"].as_array().unwrap().len(), b2["total"].as_str()),
        (0, Some("0.00"))
    );
    // A range before the sales is empty.
    let before: Value = app
        .get(
            "/v1/buyers/me/statement?from=2020-01-01&to=2020-01-31",
            &buyer_key("b1"),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(before["lines"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn a_statement_needs_a_valid_range_and_the_right_key() {
    let (app, _, _) = books_app().await;
    let bad = app
        .get("/v1/buyers/me/statement?from=2026-13-01", &buyer_key("b1"))
        .await;
    assert_eq!(bad.status(), 422);
    let body: Value = bad.json().await.unwrap();
    let mut fields: Vec<_> = body["error"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap().to_string())
        .collect();
    fields.sort();
    assert_eq!(fields, ["from", "to"]);
    let backwards = app
        .get(
            "/v1/buyers/me/statement?from=2026-02-01&to=2026-01-01",
            &buyer_key("b1"),
        )
        .await;
    assert_eq!(backwards.status(), 422);
    assert_eq!(
        app.get(
            "/v1/buyers/me/statement?from=2026-01-01&to=2026-01-02",
            SELLER_A_KEY
        )
        .await
        .status(),
        403
    );
    assert_eq!(
        app.get(
            "/v1/sellers/me/statement?from=2026-01-01&to=2026-01-02",
            &buyer_key("b1")
        )
        .await
        .status(),
        403
    );
}
