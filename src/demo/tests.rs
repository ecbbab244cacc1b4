//! The demo buyers over HTTP, driven by the exchange's own buyer client where it can be.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use super::{spawn, DemoBuyers, Kind};
use crate::buyer_client::{signature, BidAnswer, BuyerClient, Endpoint, Outcome, PostAnswer};
use crate::config::{Buyer, Config};
use crate::domain::Money;

const SECRET: &str = "test-signing-secret-0001";

const EXCHANGE: &str = r#"
[[verticals]]
id = "auto_insurance"
fields = [
  { name = "zip",   type = "zip",      required = true },
  { name = "state", type = "us_state", required = true },
  { name = "email", type = "email",    pii = true },
]
"#;

/// Port 0 binds one free port for all these endpoints, so tests never clash.
const BUYERS: &[(&str, &str, &str)] = &[
    ("ranged", "bid=9.00-18.00&latency_ms=0-5", ""),
    ("picky", "bid=5.00&no_bid_pct=100", "reject_pct=100"),
    ("broken", "bid=5.00&error_pct=100", "error_pct=100"),
    ("slow", "bid=5.00&latency_ms=300", "latency_ms=300"),
];

struct TestMarket {
    config: Config,
    buyers: DemoBuyers,
    client: BuyerClient,
    http: reqwest::Client,
}

fn temp_dir() -> PathBuf {
    std::env::temp_dir().join(format!(
        "pingpost-demo-test-{}",
        uuid::Uuid::now_v7().simple()
    ))
}

async fn spawn_market() -> TestMarket {
    let dir = temp_dir();
    std::fs::create_dir_all(dir.join("buyers")).expect("temp dir is writable");
    for (id, ping_query, post_query) in BUYERS {
        let text = format!(
            "id = \"{id}\"\nverticals = [\"auto_insurance\"]\nsigning_secret = \"{SECRET}\"\nmax_bid = \"100.00\"\n\
             ping_url = \"http://127.0.0.1:0/{id}/ping?{ping_query}\"\n\
             post_url = \"http://127.0.0.1:0/{id}/post?{post_query}\"\n"
        );
        std::fs::write(dir.join("buyers").join(format!("{id}.toml")), text)
            .expect("temp dir is writable");
    }
    let config = Config::from_str_with_env(&dir.join("exchange.toml"), EXCHANGE, Vec::new());
    std::fs::remove_dir_all(&dir).expect("temp dir is removable");
    let config = config.unwrap_or_else(|e| panic!("{e}"));
    let buyers = spawn(&config).await.expect("demo buyers start");
    TestMarket {
        config,
        buyers,
        client: BuyerClient::new().expect("client builds"),
        http: reqwest::Client::new(),
    }
}

impl TestMarket {
    fn url(&self, buyer: &str, kind: Kind) -> Endpoint {
        let url = self.buyers.url(buyer, kind).expect("the buyer is served");
        Endpoint::try_from(url.clone()).expect("a served URL is a request URI")
    }

    /// The buyer as the exchange sees it, its post URL pointing at the bound port.
    fn buyer(&self, id: &str) -> Buyer {
        let mut buyer = Buyer::clone(self.config.marketplace.buyer(id).expect("the buyer exists"));
        buyer.post_url = self.url(id, Kind::Post);
        buyer
    }

    async fn bid(&self, id: &str) -> Outcome<BidAnswer> {
        let body = json!({"ping_id": "ping_1", "vertical": "auto_insurance", "floor": "1.00", "tmax_ms": 800,
                          "lead": {"zip": "33101", "state": "FL"}});
        let body = serde_json::to_vec(&body).expect("JSON serialises");
        let timeout = Duration::from_secs(5);
        self.client
            .bid(
                &self.buyer(id),
                &self.url(id, Kind::Ping),
                body.into(),
                timeout,
            )
            .await
            .outcome
    }

    async fn post(&self, id: &str) -> Outcome<PostAnswer> {
        let body = json!({"ping_id": "ping_1", "bid_id": "bid_1", "price": "5.00", "vertical": "auto_insurance",
                          "lead": {"zip": "33101", "state": "FL", "email": "ana@example.com"}});
        let body = serde_json::to_vec(&body).expect("JSON serialises");
        self.client
            .post(&self.buyer(id), body, Duration::from_secs(5))
            .await
            .outcome
    }

    /// A ping to `ranged`, signed with `secret` at `timestamp`.
    async fn raw_ping(&self, secret: &str, timestamp: u64, body: &[u8]) -> reqwest::Response {
        self.http
            .post(self.url("ranged", Kind::Ping).url().clone())
            .header("x-pingpost-timestamp", timestamp.to_string())
            .header("x-pingpost-signature", signature(secret, timestamp, body))
            .body(body.to_vec())
            .send()
            .await
            .expect("the demo buyer answers")
    }
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

const PING: &[u8] =
    br#"{"ping_id": "ping_1", "vertical": "auto_insurance", "lead": {"zip": "33101"}}"#;

#[actix_web::test]
async fn a_signed_bid_request_gets_a_bid_in_the_configured_range() {
    let market = spawn_market().await;
    let (low, high) = (
        Money::parse("9.00").expect("valid"),
        Money::parse("18.00").expect("valid"),
    );
    for _ in 0..20 {
        match market.bid("ranged").await {
            Outcome::Answer(BidAnswer::Bid { price, bid_id }) => {
                assert!(
                    price >= low && price <= high,
                    "bid {price:?} outside 9.00-18.00"
                );
                assert!(bid_id.is_some_and(|id| id.starts_with("bid_")));
            }
            other => panic!("expected a bid, got {other:?}"),
        }
    }
    market.buyers.stop().await.expect("stops cleanly");
}

#[actix_web::test]
async fn the_bid_is_a_string_with_two_decimals() {
    let market = spawn_market().await;
    let response = market.raw_ping(SECRET, now_s(), PING).await;
    assert_eq!(response.status(), 200);
    let body: Value =
        serde_json::from_slice(&response.bytes().await.expect("a body")).expect("JSON");
    let bid = body["bid"].as_str().expect("the bid is a string");
    assert!(
        bid.split_once('.')
            .is_some_and(|(_, cents)| cents.len() == 2),
        "{bid}"
    );
}

#[actix_web::test]
async fn a_wrong_signature_or_an_old_timestamp_gets_401() {
    let market = spawn_market().await;
    let wrong_secret = market
        .raw_ping("not-the-buyers-secret", now_s(), PING)
        .await;
    assert_eq!(wrong_secret.status(), 401);
    let stale = market.raw_ping(SECRET, now_s() - 301, PING).await;
    assert_eq!(stale.status(), 401);
    let unsigned = market
        .http
        .post(market.url("ranged", Kind::Ping).url().clone())
        .body(PING)
        .send()
        .await
        .expect("answers");
    assert_eq!(unsigned.status(), 401);
    // The same request correctly signed is answered, so the 401s above are about the signature.
    assert_eq!(market.raw_ping(SECRET, now_s(), PING).await.status(), 200);
}

#[actix_web::test]
async fn a_buyer_that_never_bids_answers_204() {
    let market = spawn_market().await;
    assert_eq!(market.bid("picky").await, Outcome::Answer(BidAnswer::NoBid));
    let response = market.raw_ping(SECRET, now_s(), PING).await;
    assert_eq!(
        response.status(),
        200,
        "the ranged buyer on the same port still bids"
    );
}

#[actix_web::test]
async fn posts_are_accepted_or_rejected_as_configured() {
    let market = spawn_market().await;
    match market.post("ranged").await {
        Outcome::Answer(PostAnswer::Accepted {
            buyer_lead_id: Some(id),
        }) => assert!(id.starts_with("demo_")),
        other => panic!("expected an acceptance, got {other:?}"),
    }
    assert_eq!(
        market.post("picky").await,
        Outcome::Answer(PostAnswer::Rejected {
            reason: "demo_reject".into()
        })
    );
}

#[actix_web::test]
async fn error_pct_100_answers_500_to_pings_and_posts() {
    let market = spawn_market().await;
    assert_eq!(
        market.bid("broken").await,
        Outcome::Error("status 500".into())
    );
    assert_eq!(
        market.post("broken").await,
        Outcome::Error("status 500".into())
    );
}

#[actix_web::test]
async fn latency_delays_the_answer() {
    let market = spawn_market().await;
    let started = Instant::now();
    assert!(matches!(
        market.bid("slow").await,
        Outcome::Answer(BidAnswer::Bid { .. })
    ));
    assert!(started.elapsed() >= Duration::from_millis(300));
    let (buyer, url) = (market.buyer("slow"), market.url("slow", Kind::Ping));
    let short = market
        .client
        .bid(
            &buyer,
            &url,
            PING.to_vec().into(),
            Duration::from_millis(100),
        )
        .await;
    assert_eq!(short.outcome, Outcome::Timeout);
}

#[actix_web::test]
async fn bodies_over_the_limit_unknown_paths_and_other_methods_are_refused() {
    let market = spawn_market().await;
    let big = vec![b' '; super::BODY_BYTES_MAX + 1];
    assert_eq!(market.raw_ping(SECRET, now_s(), &big).await.status(), 413);
    let not_json = market.raw_ping(SECRET, now_s(), b"hello").await;
    assert_eq!(not_json.status(), 400);
    let mut unknown = market
        .buyers
        .url("ranged", Kind::Ping)
        .expect("served")
        .clone();
    unknown.set_path("/nobody/ping");
    assert_eq!(
        market
            .http
            .post(unknown)
            .send()
            .await
            .expect("answers")
            .status(),
        404
    );
    let get = market
        .http
        .get(market.url("ranged", Kind::Ping).url().clone())
        .send()
        .await
        .expect("answers");
    assert_eq!(get.status(), 405);
}

#[actix_web::test]
async fn a_taken_port_is_a_clear_error() {
    let market = spawn_market().await;
    let port = market.buyers.addrs().next().expect("one address").port();
    let mut config = market.config.clone();
    let dir = temp_dir();
    std::fs::create_dir_all(&dir).expect("temp dir is writable");
    let file = dir.join("taken.toml");
    let text = format!(
        "id = \"taken\"\nverticals = [\"auto_insurance\"]\nsigning_secret = \"{SECRET}\"\n\
         ping_url = \"http://localhost:{port}/t/ping?bid=1\"\npost_url = \"http://localhost:{port}/t/post\"\n"
    );
    std::fs::write(&file, text).expect("temp dir is writable");
    config.buyers_dir = dir.clone();
    let marketplace = config.reload_marketplace();
    std::fs::remove_dir_all(&dir).expect("temp dir is removable");
    config.marketplace = std::sync::Arc::new(marketplace.unwrap_or_else(|e| panic!("{e}")));
    let error = spawn(&config).await.err().expect("the port is taken");
    assert!(
        format!("{error:#}").contains(&format!("127.0.0.1:{port}")),
        "{error:#}"
    );
}
