//! Caps and rate limits: exact under concurrency, reservations that lapse, windows in the
//! buyer's time zone, and the database's settlement when counters are not shared.

use std::collections::HashMap;

use chrono::{Duration as ChronoDuration, TimeZone, Timelike, Utc};
use serde_json::{json, Value};

use crate::helpers::*;

async fn flow(app: &TestApp) -> Value {
    let (_, ping) = app.ping(SELLER_A_KEY, &ping_body()).await;
    if ping["status"] != "offer" {
        return ping;
    }
    let (_, sale) = app
        .send(
            "/v1/posts",
            SELLER_A_KEY,
            &json!({"ping_id": ping["ping_id"], "lead": full_lead()}),
        )
        .await;
    sale
}

/// Sales per buyer, counted from the ledger.
async fn sales_by_buyer(app: &TestApp) -> HashMap<String, usize> {
    let mut sales = HashMap::new();
    for (_, account, cents) in app.db.ledger_entries().await {
        if let Some(buyer) = account.strip_prefix("buyer:") {
            if cents < 0 {
                *sales.entry(buyer.to_string()).or_insert(0) += 1;
            }
        }
    }
    sales
}

#[tokio::test]
async fn two_hundred_concurrent_flows_never_pass_a_count_or_spend_cap() {
    let five = TestBuyer::start(Reply::bid("20.00"), Reply::accept()).await;
    let three = TestBuyer::start(Reply::bid("10.00"), Reply::accept()).await;
    let rest = TestBuyer::start(Reply::bid("5.00"), Reply::accept()).await;
    let app = spawn_app(&[
        pinged_buyer(
            "five",
            &five,
            "max_in_flight = 1000\n[caps]\ntimezone = \"America/New_York\"\ndaily_count = 5",
        ),
        pinged_buyer(
            "three",
            &three,
            "max_in_flight = 1000\n[caps]\ndaily_spend = \"30.00\"",
        ),
        pinged_buyer("rest", &rest, "max_in_flight = 1000"),
    ])
    .await;

    let results = futures_util::future::join_all((0..200).map(|_| flow(&app))).await;

    let sold = results.iter().filter(|r| r["status"] == "sold").count();
    assert_eq!(
        sold,
        200,
        "every flow sells to someone: {:?}",
        results.iter().find(|r| r["status"] != "sold")
    );
    let by_buyer = sales_by_buyer(&app).await;
    assert_eq!(by_buyer.get("five"), Some(&5));
    assert_eq!(by_buyer.get("three"), Some(&3));
    assert_eq!(by_buyer.get("rest"), Some(&192));
    let payouts: HashMap<&str, usize> = results.iter().fold(HashMap::new(), |mut m, r| {
        *m.entry(r["payout"].as_str().unwrap()).or_insert(0) += 1;
        m
    });
    assert_eq!(payouts.get("16.00"), Some(&5), "20.00 × 0.80");
    assert_eq!(payouts.get("8.00"), Some(&3), "10.00 × 0.80");
}

#[tokio::test]
async fn an_expired_unposted_offer_gives_its_reservation_back() {
    let one = TestBuyer::start(Reply::bid("20.00"), Reply::accept()).await;
    let app = spawn_app(&[pinged_buyer("one", &one, "[caps]\ndaily_count = 1")]).await;

    let (_, first) = app.ping(SELLER_A_KEY, &ping_body()).await;
    let (_, while_reserved) = app.ping(SELLER_A_KEY, &ping_body()).await;
    assert_eq!(first["status"], "offer");
    assert_eq!(
        while_reserved["status"], "no_bid",
        "the reservation counts against the cap"
    );
    assert_eq!(
        one.bids().len(),
        1,
        "a buyer at its cap gets no bid request"
    );

    // The offer lapses unposted (TTL, then the post lease): the room comes back.
    app.exchange.advance_clock(
        ChronoDuration::seconds(120)
            + ChronoDuration::from_std(app.exchange.post_lease()).unwrap()
            + ChronoDuration::seconds(1),
    );
    let (_, after) = app.ping(SELLER_A_KEY, &ping_body()).await;
    assert_eq!(after["status"], "offer");
    assert_eq!(one.bids().len(), 2);
}

#[tokio::test]
async fn a_rejected_post_releases_the_reservation_for_the_next_lead() {
    let one = TestBuyer::start(Reply::bid("20.00"), Reply::reject()).await;
    let backup = TestBuyer::start(Reply::bid("5.00"), Reply::accept()).await;
    let app = spawn_app(&[
        pinged_buyer("one", &one, "[caps]\ndaily_count = 1"),
        pinged_buyer("backup", &backup, ""),
    ])
    .await;

    let sale = flow(&app).await;
    assert_eq!(
        sale["payout"], "4.00",
        "the capped winner rejected; the backup bought it"
    );
    flow(&app).await;

    assert_eq!(
        one.bids().len(),
        2,
        "the rejected lead's reservation was released"
    );
}

#[tokio::test]
async fn caps_reset_at_the_buyers_local_midnight_not_utcs() {
    let capped = TestBuyer::start(Reply::bid("20.00"), Reply::accept()).await;
    let app = spawn_app(&[pinged_buyer(
        "capped",
        &capped,
        "[caps]\ntimezone = \"America/New_York\"\ndaily_count = 1",
    )])
    .await;
    assert_eq!(flow(&app).await["status"], "sold");
    assert_eq!(flow(&app).await["status"], "no_bid", "at its daily cap");

    let now = app.exchange.now();
    let tz = chrono_tz::America::New_York;
    let local = now.with_timezone(&tz);
    let next_local_midnight = tz
        .from_local_datetime(
            &(local.date_naive() + ChronoDuration::days(1))
                .and_hms_opt(0, 0, 0)
                .unwrap(),
        )
        .earliest()
        .unwrap()
        .with_timezone(&Utc);
    let next_utc_midnight = (now.date_naive() + ChronoDuration::days(1))
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc();
    let jump_to = |target: chrono::DateTime<Utc>| {
        let by = target - app.exchange.now();
        app.exchange.advance_clock(by);
    };
    if next_utc_midnight < next_local_midnight {
        jump_to(next_utc_midnight + ChronoDuration::minutes(1));
        assert_eq!(
            flow(&app).await["status"],
            "no_bid",
            "UTC midnight does not reset a New York cap"
        );
    }
    jump_to(next_local_midnight - ChronoDuration::minutes(1));
    assert_eq!(
        flow(&app).await["status"],
        "no_bid",
        "a minute before local midnight: still capped"
    );
    jump_to(next_local_midnight + ChronoDuration::minutes(1));
    let sale = flow(&app).await;
    assert_eq!(sale["status"], "sold", "a new local day: {sale}");
    assert_eq!(next_local_midnight.with_timezone(&tz).hour(), 0);
}

#[tokio::test]
async fn without_shared_counters_the_database_still_holds_the_cap() {
    // Two nodes on one database, each with its own in-process counters: neither sees the
    // other's reservations, so only the settlement check in the database can hold the cap.
    let capped = TestBuyer::start(Reply::bid("20.00"), Reply::accept()).await;
    let backup = TestBuyer::start(Reply::bid("5.00"), Reply::accept()).await;
    let buyers = [
        pinged_buyer(
            "capped",
            &capped,
            "max_in_flight = 1000\n[caps]\ndaily_count = 3",
        ),
        pinged_buyer("backup", &backup, "max_in_flight = 1000"),
    ];
    let node_a = spawn_app(&buyers).await;
    let node_b = spawn_app_on(&node_a, &buyers).await;

    let flows = (0..40).map(|i| {
        if i % 2 == 0 {
            flow(&node_a)
        } else {
            flow(&node_b)
        }
    });
    let results = futures_util::future::join_all(flows).await;

    assert!(results.iter().all(|r| r["status"] == "sold"), "{results:?}");
    let by_buyer = sales_by_buyer(&node_a).await;
    assert_eq!(by_buyer.get("capped"), Some(&3), "never more than the cap");
    assert_eq!(by_buyer.get("backup"), Some(&37));
}

#[tokio::test]
async fn a_seller_over_its_rate_gets_429_and_others_are_served() {
    let buyer = TestBuyer::start(Reply::bid("9.00"), Reply::accept()).await;
    let app = spawn_app(&[pinged_buyer("b1", &buyer, "")]).await;

    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(
            app.post_json("/v1/pings", SELLER_SLOW_KEY, &ping_body())
                .await,
        );
    }
    let (other, _) = app.ping(SELLER_A_KEY, &ping_body()).await;

    assert_eq!(statuses[0].status(), 200);
    assert_eq!(statuses[1].status(), 200);
    let limited = statuses.pop().unwrap();
    assert_eq!(limited.status(), 429);
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1);
    let body: Value = limited.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    assert_eq!(other, 200);
    assert_eq!(
        buyer.bids().len(),
        3,
        "the limited ping was never auctioned"
    );
}
