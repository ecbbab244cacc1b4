//! The ping auction: winners, eligibility, the buyer protocol, deadlines, floors, idempotency.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test]
async fn the_highest_valid_bid_wins_and_the_payout_is_rounded_down() {
    // Arrange
    let low = TestBuyer::start(Reply::bid("10.00"), Reply::accept()).await;
    let high = TestBuyer::start(Reply::bid("14.99"), Reply::accept()).await;
    let mid = TestBuyer::start(Reply::json(json!({"bid": 12.5})), Reply::accept()).await;
    let app = spawn_app(&[
        pinged_buyer("low", &low, ""),
        pinged_buyer("high", &high, ""),
        pinged_buyer("mid", &mid, ""),
    ])
    .await;

    // Act
    let (status, body) = app.ping(SELLER_A_KEY, &ping_body()).await;

    // Assert: 14.99 × 0.80 = 11.992, rounded down to 11.99.
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "offer");
    assert_eq!(body["payout"], "11.99");
    assert_eq!(body["currency"], "USD");
    assert!(body["ping_id"].as_str().unwrap().starts_with("ping_"));
    assert!(body["expires_at"].as_str().unwrap().ends_with('Z'));
    for buyer in [&low, &high, &mid] {
        assert_eq!(buyer.bids().len(), 1);
    }
}

#[tokio::test]
async fn ineligible_buyers_receive_no_request_at_all() {
    let eligible = TestBuyer::start(Reply::bid("5.00"), Reply::accept()).await;
    let wrong_state = TestBuyer::start(Reply::bid("50.00"), Reply::accept()).await;
    let too_young = TestBuyer::start(Reply::bid("50.00"), Reply::accept()).await;
    let missing_field = TestBuyer::start(Reply::bid("50.00"), Reply::accept()).await;
    let off_schedule = TestBuyer::start(Reply::bid("50.00"), Reply::accept()).await;
    let paused = TestBuyer::start(Reply::bid("50.00"), Reply::accept()).await;
    let blocking = TestBuyer::start(Reply::bid("50.00"), Reply::accept()).await;
    let allow_other = TestBuyer::start(Reply::bid("50.00"), Reply::accept()).await;
    let wrong_zip = TestBuyer::start(Reply::bid("50.00"), Reply::accept()).await;
    // No day is in the schedule, so the buyer is never open, whatever the clock says.
    let closed_days =
        "[schedule]\ntimezone = \"America/New_York\"\ndays = []\nhours = \"00:00-24:00\"\n";
    let buyers = [
        pinged_buyer("eligible", &eligible, "[filters]\nstate = { in = [\"FL\", \"GA\"] }\nzip = { prefix = [\"331\"] }\nage = { min = 21, max = 70 }"),
        pinged_buyer("wrong-state", &wrong_state, "[filters]\nstate = { in = [\"TX\"] }"),
        pinged_buyer("too-young", &too_young, "[filters]\nage = { min = 40 }"),
        pinged_buyer("missing-field", &missing_field, "[filters]\ncoverage = { eq = \"liability\" }"),
        pinged_buyer("off-schedule", &off_schedule, closed_days),
        pinged_buyer("paused", &paused, "status = \"paused\""),
        pinged_buyer("blocking", &blocking, "sellers_block = [\"seller-a\"]"),
        pinged_buyer("allow-other", &allow_other, "sellers_allow = [\"seller-b\"]"),
        pinged_buyer("wrong-zip", &wrong_zip, "[filters]\nzip = { not_in = [\"33101\"] }"),
    ];
    let app = spawn_app(&buyers).await;
    let mut lead = ping_lead();
    lead.as_object_mut().unwrap().remove("coverage");

    let (status, body) = app
        .ping(
            SELLER_A_KEY,
            &json!({"vertical": "auto_insurance", "lead": lead}),
        )
        .await;

    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["payout"], "4.00",
        "only the eligible buyer's 5.00 can win"
    );
    assert_eq!(eligible.bids().len(), 1);
    for (name, buyer) in [
        ("wrong_state", &wrong_state),
        ("too_young", &too_young),
        ("missing_field", &missing_field),
        ("off_schedule", &off_schedule),
        ("paused", &paused),
        ("blocking", &blocking),
        ("allow_other", &allow_other),
        ("wrong_zip", &wrong_zip),
    ] {
        assert_eq!(buyer.bids().len(), 0, "{name} must not be contacted");
    }
}

#[tokio::test]
async fn a_buyer_paused_by_an_admin_is_not_pinged() {
    let buyer = TestBuyer::start(Reply::bid("5.00"), Reply::accept()).await;
    let app = spawn_app(&[pinged_buyer("b1", &buyer, "")]).await;
    app.exchange.set_paused("b1", true);

    let (_, body) = app.ping(SELLER_A_KEY, &ping_body()).await;

    assert_eq!(body["status"], "no_bid");
    assert!(buyer.bids().is_empty());
}

#[tokio::test]
async fn bid_requests_are_signed_and_carry_only_non_pii_fields() {
    let buyer = TestBuyer::start(Reply::bid("9.00"), Reply::accept()).await;
    let app = spawn_app(&[pinged_buyer("b1", &buyer, "")]).await;

    // A direct post carries the full lead; the bid request still must not.
    let (status, body) = app
        .send(
            "/v1/leads",
            SELLER_A_KEY,
            &json!({"vertical": "auto_insurance", "lead": full_lead()}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    app.ping(SELLER_A_KEY, &ping_body()).await;

    let bids = buyer.bids();
    assert_eq!(bids.len(), 2);
    for bid in &bids {
        assert!(bid.signature_valid(SIGNING_SECRET), "signature must verify");
        assert!(!bid.signature_valid("another-secret-0000000"));
        let lead = bid.body["lead"].as_object().unwrap();
        let mut keys: Vec<_> = lead.keys().cloned().collect();
        keys.sort();
        assert_eq!(keys, ["age", "coverage", "homeowner", "state", "zip"]);
        let raw = String::from_utf8(bid.raw.clone()).unwrap();
        for pii in [
            "Ana",
            "Diaz",
            "ana@example.com",
            "555-0100",
            "5550100",
            "Ocean",
        ] {
            assert!(!raw.contains(pii), "bid request leaks {pii}");
        }
        assert_eq!(bid.body["vertical"], "auto_insurance");
        assert_eq!(bid.body["floor"], "1.00");
        assert!(bid.body["ping_id"].as_str().unwrap().starts_with("ping_"));
        assert!(bid.body["tmax_ms"].as_u64().unwrap() <= 1000);
    }
    // The winner's post carries the full lead, the phone in E.164, and the same ping id.
    let posts = buyer.posts();
    assert_eq!(posts.len(), 1);
    assert!(posts[0].signature_valid(SIGNING_SECRET));
    assert_eq!(posts[0].body["lead"]["phone"], "+13055550100");
    assert_eq!(posts[0].body["ping_id"], bids[0].body["ping_id"]);
    assert_eq!(posts[0].body["price"], "9.00");
}

#[tokio::test]
async fn broken_and_slow_buyers_are_excluded_and_the_deadline_holds() {
    let good = TestBuyer::start(Reply::bid("7.00"), Reply::accept()).await;
    let broken = [
        ("sleeps", Reply::bid("90.00").after(Duration::from_secs(3))),
        ("status-500", Reply::raw(500, r#"{"bid": "90.00"}"#)),
        ("html", Reply::raw(200, "<html><body>bid 90</body></html>")),
        ("nan", Reply::json(json!({"bid": "NaN"}))),
        ("negative", Reply::json(json!({"bid": -90}))),
        ("three-decimals", Reply::json(json!({"bid": "90.001"}))),
        ("above-max-bid", Reply::bid("200.01")),
    ];
    let mut buyers = vec![pinged_buyer("good", &good, "")];
    let mut servers = Vec::new();
    for (id, reply) in broken {
        let server = TestBuyer::start(reply, Reply::accept()).await;
        buyers.push(pinged_buyer(id, &server, "timeout_ms = 5000"));
        servers.push(server);
    }
    let app = spawn_app(&buyers).await;

    let started = Instant::now();
    let (status, body) = app.ping(SELLER_A_KEY, &ping_body()).await;
    let elapsed = started.elapsed();

    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["payout"], "5.60",
        "only the good buyer's 7.00 is valid"
    );
    assert!(
        elapsed < Duration::from_millis(1100),
        "answered after {elapsed:?}"
    );
    for server in &servers {
        assert_eq!(server.bids().len(), 1, "every eligible buyer is asked");
    }
    let recorded = app.db.bid_outcomes().await;
    assert_eq!(recorded["good"], "bid");
    assert_eq!(recorded["sleeps"], "timeout");
    for id in [
        "status-500",
        "html",
        "nan",
        "negative",
        "three-decimals",
        "above-max-bid",
    ] {
        assert_eq!(recorded[id], "error", "{id}");
    }
}

#[tokio::test]
async fn each_floor_is_enforced_and_sent_to_its_buyer() {
    // Vertical floor 1.00; seller-b floor 2.00; the ping asks 3.00; buyer "picky" has 8.00.
    let under_ping_floor = TestBuyer::start(Reply::bid("2.50"), Reply::accept()).await;
    let picky = TestBuyer::start(Reply::bid("7.50"), Reply::accept()).await;
    let fine = TestBuyer::start(Reply::bid("4.00"), Reply::accept()).await;
    let app = spawn_app(&[
        pinged_buyer("under", &under_ping_floor, ""),
        pinged_buyer("picky", &picky, "floor = \"8.00\""),
        pinged_buyer("fine", &fine, ""),
    ])
    .await;

    let (_, body) = app
        .ping(
            SELLER_B_KEY,
            &json!({"vertical": "auto_insurance", "lead": ping_lead(), "floor": "3.00"}),
        )
        .await;

    // 7.50 is below picky's own floor; 2.50 below the ping's: fine's 4.00 wins (× 0.75).
    assert_eq!(body["payout"], "3.00", "{body}");
    assert_eq!(under_ping_floor.bids()[0].body["floor"], "3.00");
    assert_eq!(picky.bids()[0].body["floor"], "8.00");
    assert_eq!(fine.bids()[0].body["floor"], "3.00");

    // Without the ping floor, seller-b's 2.00 applies; seller-a has only the vertical's 1.00.
    app.ping(SELLER_B_KEY, &ping_body()).await;
    assert_eq!(fine.bids()[1].body["floor"], "2.00");
    app.ping(SELLER_A_KEY, &ping_body()).await;
    assert_eq!(fine.bids()[2].body["floor"], "1.00");
}

#[tokio::test]
async fn a_bid_under_the_vertical_floor_loses_and_no_bid_is_answered() {
    let cheap = TestBuyer::start(Reply::bid("0.99"), Reply::accept()).await;
    let app = spawn_app(&[pinged_buyer("cheap", &cheap, "")]).await;

    let (status, body) = app.ping(SELLER_A_KEY, &ping_body()).await;

    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"ping_id": body["ping_id"], "status": "no_bid"})
    );
}

#[tokio::test]
async fn a_fixed_price_buyer_bids_without_a_request_and_can_win() {
    let pinged = TestBuyer::start(Reply::bid("10.00"), Reply::accept()).await;
    let fixed_server = TestBuyer::start(Reply::no_bid(), Reply::accept()).await;
    let app = spawn_app(&[
        pinged_buyer("pinged", &pinged, ""),
        fixed_buyer("fixed", "12.00", &fixed_server, ""),
    ])
    .await;

    let (_, body) = app.ping(SELLER_A_KEY, &ping_body()).await;

    assert_eq!(body["payout"], "9.60");
    assert!(
        fixed_server.bids().is_empty(),
        "a fixed-price buyer is never pinged"
    );
}

#[tokio::test]
async fn ties_go_to_the_earlier_response() {
    let slow = TestBuyer::start(
        Reply::bid("10.00").after(Duration::from_millis(150)),
        Reply::accept(),
    )
    .await;
    let fast = TestBuyer::start(Reply::bid("10.00"), Reply::reject()).await;
    // "a-slow" comes first in file order; the response order must decide.
    let app = spawn_app(&[
        pinged_buyer("a-slow", &slow, ""),
        pinged_buyer("b-fast", &fast, ""),
    ])
    .await;

    let (_, ping) = app.ping(SELLER_A_KEY, &ping_body()).await;
    let (_, sale) = app
        .send(
            "/v1/posts",
            SELLER_A_KEY,
            &json!({"ping_id": ping["ping_id"], "lead": full_lead()}),
        )
        .await;

    // The fast buyer won and was posted first; it rejected, so the slow one took it.
    assert_eq!(fast.posts().len(), 1);
    assert_eq!(slow.posts().len(), 1);
    assert_eq!(sale["status"], "sold");
}

#[tokio::test]
async fn the_same_idempotency_key_replays_without_a_second_auction() {
    let buyer = TestBuyer::start(Reply::bid("10.00"), Reply::accept()).await;
    let app = spawn_app(&[pinged_buyer("b1", &buyer, "")]).await;
    let send = |body: Value| {
        app.http
            .post(format!("{}/v1/pings", app.address))
            .bearer_auth(SELLER_A_KEY)
            .header("Idempotency-Key", "order-42")
            .json(&body)
            .send()
    };

    let first: Value = send(ping_body()).await.unwrap().json().await.unwrap();
    // The same JSON written with its keys in another order is the same body.
    let reordered = json!({"lead": ping_lead(), "vertical": "auto_insurance"});
    let second = send(reordered).await.unwrap();
    assert_eq!(second.status(), 200);
    let second: Value = second.json().await.unwrap();
    let other = send(json!({"vertical": "auto_insurance", "lead": ping_lead(), "floor": "2.00"}))
        .await
        .unwrap();

    assert_eq!(first, second);
    assert_eq!(buyer.bids().len(), 1, "no second auction");
    assert_eq!(other.status(), 409);
    let other: Value = other.json().await.unwrap();
    assert_eq!(other["error"]["code"], "idempotency_key_reused");
    // Another seller's identical key is its own.
    let (status, body) = app.ping(SELLER_B_KEY, &ping_body()).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn the_seller_sees_its_ping_and_no_one_else_does() {
    let buyer = TestBuyer::start(Reply::bid("10.00"), Reply::accept()).await;
    let app = spawn_app(&[pinged_buyer("b1", &buyer, "")]).await;
    let (_, ping) = app.ping(SELLER_A_KEY, &ping_body()).await;
    let path = format!("/v1/pings/{}", ping["ping_id"].as_str().unwrap());

    let own: Value = app.get(&path, SELLER_A_KEY).await.json().await.unwrap();
    let other = app.get(&path, SELLER_B_KEY).await;

    assert_eq!(own["status"], "offer");
    assert_eq!(own["payout"], ping["payout"]);
    assert_eq!(own["expires_at"], ping["expires_at"]);
    assert_eq!(other.status(), 404);
    assert_eq!(
        app.get("/v1/pings/ping_unknown", SELLER_A_KEY)
            .await
            .status(),
        404
    );
}
