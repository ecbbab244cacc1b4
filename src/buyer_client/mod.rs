//! The outbound client that talks to buyers: signed requests, hard timeouts, bounded bodies.

mod transport;
pub mod wire;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::Semaphore;

use crate::config::Buyer;
use crate::domain::Money;
use transport::sending_threads;
pub use transport::{Endpoint, Transport, RESPONSE_BYTES_MAX};
pub use wire::{BidAnswer, BidRequest, PostAnswer, PostRequest};

/// What came of one request to a buyer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<T> {
    Answer(T),
    Timeout,
    Error(String),
}

#[derive(Debug, Clone)]
pub struct Timed<T> {
    pub outcome: Outcome<T>,
    pub latency_ms: u64,
}

#[derive(Clone)]
pub struct BuyerClient {
    transport: Transport,
    /// Requests in flight per buyer, under the bound its config gave when the bound was made.
    in_flight: Arc<Mutex<HashMap<String, BuyerBound>>>,
    /// Requests in flight to all buyers together. Each holds a connection, and a connection
    /// is a file descriptor: unbounded, a burst of auctions over many buyers took every
    /// descriptor the process had, and the database could no longer open its files (sales
    /// failed with 500s). Past the bound a request is that buyer's error.
    total_in_flight: Arc<Semaphore>,
}

/// A buyer's `max_in_flight` and the permits that enforce it.
struct BuyerBound {
    max_in_flight: u32,
    permits: Arc<Semaphore>,
}

/// Descriptors kept back from buyer connections: the database, the sellers' connections,
/// Redis, logs.
fn descriptors_kept_back(limit: u64) -> u64 {
    (limit / 4).max(256)
}

/// Buyer requests in flight at once, from the process's open-files limit: a share of what
/// is not kept back, the other shares for the idle connections each sending thread's pool
/// may keep after a burst (one pool per HTTP worker, as many workers as cores).
fn total_in_flight_max() -> usize {
    let limit = rlimit::getrlimit(rlimit::Resource::NOFILE)
        .map(|(soft, _)| soft)
        .unwrap_or(1024);
    let pools = sending_threads() as u64;
    (limit.saturating_sub(descriptors_kept_back(limit)) / (1 + pools))
        .clamp(64, Semaphore::MAX_PERMITS as u64) as usize
}

/// `v1=<hex HMAC-SHA256(secret, timestamp + "." + body)>`.
pub fn signature(secret: &str, timestamp: u64, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    // Into a buffer of the exact size: `hex::encode` collects its digits one `char` at a
    // time, about as much work as the rest of a bid request's signing (callgrind).
    let mut text = [0u8; 3 + 64];
    text[..3].copy_from_slice(b"v1=");
    hex::encode_to_slice(mac.finalize().into_bytes(), &mut text[3..])
        .expect("32 bytes are 64 hex digits");
    String::from_utf8(text.to_vec()).expect("hex digits are ASCII")
}

impl BuyerClient {
    pub fn new() -> anyhow::Result<BuyerClient> {
        BuyerClient::with_total_in_flight(total_in_flight_max())
    }

    /// A client that has at most `total` requests in flight to all buyers together.
    pub fn with_total_in_flight(total: usize) -> anyhow::Result<BuyerClient> {
        Ok(BuyerClient {
            // Below the keep-alive of common servers (5 s and up).
            transport: Transport::new(Duration::from_secs(4))?,
            in_flight: Arc::default(),
            total_in_flight: Arc::new(Semaphore::new(total)),
        })
    }

    /// The buyer's permits. A reload that changed its `max_in_flight` gets new permits at the
    /// new bound; requests already in flight finish on the old ones, so for as long as they
    /// last a lowered bound can be passed by at most the old one.
    fn semaphore(&self, buyer: &Buyer) -> Arc<Semaphore> {
        let mut map = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        // Looked up before `insert`, which takes an owned key: a copy of the id per request.
        if let Some(bound) = map.get(buyer.id.as_str()) {
            if bound.max_in_flight == buyer.max_in_flight {
                return bound.permits.clone();
            }
        }
        let permits = Arc::new(Semaphore::new(buyer.max_in_flight as usize));
        map.insert(
            buyer.id.clone(),
            BuyerBound {
                max_in_flight: buyer.max_in_flight,
                permits: permits.clone(),
            },
        );
        permits
    }

    pub async fn bid(
        &self,
        buyer: &Buyer,
        url: &Endpoint,
        body: Bytes,
        timeout: Duration,
    ) -> Timed<BidAnswer> {
        let max_bid = buyer.max_bid;
        self.send(buyer, url, body, timeout, move |status, bytes| {
            wire::parse_bid(status, bytes, max_bid)
        })
        .await
    }

    pub async fn post(&self, buyer: &Buyer, body: Vec<u8>, timeout: Duration) -> Timed<PostAnswer> {
        self.send(
            buyer,
            &buyer.post_url,
            body.into(),
            timeout,
            wire::parse_post,
        )
        .await
    }

    async fn send<T>(
        &self,
        buyer: &Buyer,
        url: &Endpoint,
        body: Bytes,
        timeout: Duration,
        parse: impl FnOnce(u16, &[u8]) -> Result<T, String>,
    ) -> Timed<T> {
        let started = Instant::now();
        let semaphore = self.semaphore(buyer);
        let permits = (semaphore.try_acquire(), self.total_in_flight.try_acquire());
        let outcome = match permits {
            (Err(_), _) => Outcome::Error("too many requests in flight to this buyer".into()),
            (_, Err(_)) => Outcome::Error("too many requests in flight to all buyers".into()),
            (Ok(_buyer), Ok(_total)) => {
                let exchange = self
                    .transport
                    .post_signed(url, buyer.signing_secret.expose(), body);
                match tokio::time::timeout(timeout, exchange).await {
                    Err(_) => Outcome::Timeout,
                    Ok(Err(reason)) => Outcome::Error(reason),
                    Ok(Ok((status, bytes))) => match parse(status, &bytes) {
                        Ok(answer) => Outcome::Answer(answer),
                        Err(reason) => Outcome::Error(reason),
                    },
                }
            }
        };
        Timed {
            outcome,
            latency_ms: started.elapsed().as_millis() as u64,
        }
    }
}

/// Checks a buyer's max_bid the same way for fixed-price buyers as for pinged ones.
pub fn fixed_bid(price: Money) -> BidAnswer {
    BidAnswer::Bid {
        price,
        bid_id: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With room for one request in flight across all buyers, a second buyer's request
    /// fails at once as that buyer's error while the first waits on its silent buyer.
    #[tokio::test]
    async fn requests_in_flight_to_all_buyers_are_bounded() {
        let base = silent_buyer().await;
        let client = BuyerClient::with_total_in_flight(1).unwrap();
        let (first, second) = (
            Buyer::for_tests("first", &base),
            Buyer::for_tests("second", &base),
        );
        let url = Endpoint::parse(&format!("{base}/bid")).unwrap();
        let waiting = client.bid(
            &first,
            &url,
            Bytes::from_static(b"{}"),
            Duration::from_millis(500),
        );
        let refused = async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let started = Instant::now();
            let timed = client
                .bid(
                    &second,
                    &url,
                    Bytes::from_static(b"{}"),
                    Duration::from_millis(500),
                )
                .await;
            (timed, started.elapsed())
        };
        let (waited, (refused, took)) = tokio::join!(waiting, refused);
        assert_eq!(waited.outcome, Outcome::Timeout);
        assert_eq!(
            refused.outcome,
            Outcome::Error("too many requests in flight to all buyers".into())
        );
        assert!(
            took < Duration::from_millis(100),
            "refused at once: {took:?}"
        );
        // The permit comes back with the answer (here, the timeout).
        let after = client
            .bid(
                &second,
                &url,
                Bytes::from_static(b"{}"),
                Duration::from_millis(50),
            )
            .await;
        assert_eq!(after.outcome, Outcome::Timeout);
    }

    /// A reload that raises a buyer's `max_in_flight` takes effect on the next request: the
    /// request that the old bound of 1 refused is sent under the new bound of 2.
    #[tokio::test]
    async fn a_reloaded_max_in_flight_bounds_the_next_request() {
        let base = silent_buyer().await;
        let client = BuyerClient::with_total_in_flight(100).unwrap();
        let mut buyer = Buyer::for_tests("one", &base);
        buyer.max_in_flight = 1;
        let url = Endpoint::parse(&format!("{base}/bid")).unwrap();
        let bid = |buyer: Buyer| {
            let (client, url) = (client.clone(), url.clone());
            async move {
                client
                    .bid(
                        &buyer,
                        &url,
                        Bytes::from_static(b"{}"),
                        Duration::from_millis(300),
                    )
                    .await
                    .outcome
            }
        };
        let holding = tokio::spawn(bid(buyer.clone()));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            bid(buyer.clone()).await,
            Outcome::Error("too many requests in flight to this buyer".into())
        );
        let mut reloaded = buyer.clone();
        reloaded.max_in_flight = 2;
        assert_eq!(bid(reloaded.clone()).await, Outcome::Timeout);
        assert_eq!(holding.await.unwrap(), Outcome::Timeout);
        // And lowered again: one request at a time.
        let holding = tokio::spawn(bid(buyer.clone()));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            bid(buyer).await,
            Outcome::Error("too many requests in flight to this buyer".into())
        );
        assert_eq!(holding.await.unwrap(), Outcome::Timeout);
    }

    /// A buyer that accepts connections and never answers; its base URL.
    async fn silent_buyer() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        base
    }

    #[test]
    fn the_bound_keeps_descriptors_back_for_the_rest() {
        assert_eq!(descriptors_kept_back(1024), 256);
        assert_eq!(descriptors_kept_back(20_000), 5_000);
        assert!(total_in_flight_max() >= 64);
    }

    #[test]
    fn signature_is_hmac_of_timestamp_dot_body() {
        // Computed independently (Python's hmac) for key "secret", message "1700000000.{}".
        let expected = "v1=b8569b78799ff9e3cbff0fc2d63a33a2b57f3282abd07c37ae5e8e7d79a5f163";
        assert_eq!(signature("secret", 1_700_000_000, b"{}"), expected);
        assert_ne!(signature("other", 1_700_000_000, b"{}"), expected);
    }
}
