//! The outbound client that talks to buyers: signed requests, hard timeouts, bounded bodies.

pub mod wire;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::Semaphore;

use crate::config::Buyer;
use crate::domain::Money;
pub use wire::{BidAnswer, BidRequest, PostAnswer, PostRequest};

/// Largest response body read from a buyer; past it the answer is an error.
pub const RESPONSE_BYTES_MAX: usize = 64 * 1024;

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
    /// One HTTP client, and so one connection pool, per thread that sends: a connection's
    /// task lives on the thread that opened it, and a request from another thread crossed
    /// to it and back (two wake-ups of another thread per request; see load-tests/RESULTS.md).
    http: Arc<thread_local::ThreadLocal<reqwest::Client>>,
    in_flight: Arc<Mutex<HashMap<String, Arc<Semaphore>>>>,
    /// Requests in flight to all buyers together. Each holds a connection, and a connection
    /// is a file descriptor: unbounded, a burst of auctions over many buyers took every
    /// descriptor the process had, and the database could no longer open its files (sales
    /// failed with 500s). Past the bound a request is that buyer's error.
    total_in_flight: Arc<Semaphore>,
}

/// Idle connections kept per buyer, shared out among the sending threads' pools.
const IDLE_PER_BUYER_MAX: usize = 64;

/// Threads that send to buyers, each with a pool of its own: the HTTP workers, one per core.
fn sending_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
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
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

fn http_client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(2))
        // Below the keep-alive of common servers, so a pooled connection is not reused
        // just as the buyer closes it.
        .pool_idle_timeout(Duration::from_secs(4))
        // Idle connections kept per buyer after a burst, all pools together: enough for 64
        // auctions at once without reconnecting, few enough that idle connections to many
        // buyers do not take the descriptors the requests in flight need (nor the buyers').
        .pool_max_idle_per_host((IDLE_PER_BUYER_MAX / sending_threads()).max(8))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("pingpost/", env!("CARGO_PKG_VERSION")))
        .build()
}

impl BuyerClient {
    pub fn new() -> anyhow::Result<BuyerClient> {
        BuyerClient::with_total_in_flight(total_in_flight_max())
    }

    /// A client that has at most `total` requests in flight to all buyers together.
    pub fn with_total_in_flight(total: usize) -> anyhow::Result<BuyerClient> {
        // Built once here so that a bad setting fails at start-up, not on a request.
        let http = thread_local::ThreadLocal::new();
        http.get_or_try(http_client)?;
        Ok(BuyerClient {
            http: Arc::new(http),
            in_flight: Arc::default(),
            total_in_flight: Arc::new(Semaphore::new(total)),
        })
    }

    /// This thread's client, built on its first request (with the settings that built one at
    /// start-up, so a failure here would be the machine's, and is that request's error).
    fn http(&self) -> Result<&reqwest::Client, String> {
        self.http
            .get_or_try(http_client)
            .map_err(|_| "the HTTP client could not be built".to_string())
    }

    fn semaphore(&self, buyer: &Buyer) -> Arc<Semaphore> {
        let mut map = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(buyer.id.clone())
            .or_insert_with(|| Arc::new(Semaphore::new(buyer.max_in_flight as usize)))
            .clone()
    }

    pub async fn bid(
        &self,
        buyer: &Buyer,
        url: &reqwest::Url,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Timed<BidAnswer> {
        let max_bid = buyer.max_bid;
        self.send(buyer, url, body, timeout, move |status, bytes| {
            wire::parse_bid(status, bytes, max_bid)
        })
        .await
    }

    pub async fn post(&self, buyer: &Buyer, body: Vec<u8>, timeout: Duration) -> Timed<PostAnswer> {
        self.send(buyer, &buyer.post_url, body, timeout, wire::parse_post)
            .await
    }

    async fn send<T>(
        &self,
        buyer: &Buyer,
        url: &reqwest::Url,
        body: Vec<u8>,
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
                let exchange = self.exchange(buyer, url, body);
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

    async fn exchange(
        &self,
        buyer: &Buyer,
        url: &reqwest::Url,
        body: Vec<u8>,
    ) -> Result<(u16, Vec<u8>), String> {
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let signature = signature(buyer.signing_secret.expose(), timestamp, &body);
        let mut response = self
            .http()?
            .post(url.clone())
            .header("content-type", "application/json")
            .header("x-pingpost-timestamp", timestamp.to_string())
            .header("x-pingpost-signature", signature)
            .body(body)
            .send()
            .await
            .map_err(|e| describe(&e))?;
        let status = response.status().as_u16();
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| describe(&e))? {
            if bytes.len() + chunk.len() > RESPONSE_BYTES_MAX {
                return Err("response body too large".into());
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok((status, bytes))
    }
}

/// A short reason for a transport failure; never the URL's query or any body.
fn describe(error: &reqwest::Error) -> String {
    if error.is_connect() {
        "connection failed".into()
    } else if error.is_timeout() {
        "timed out".into()
    } else if error.is_body() || error.is_decode() {
        "response body could not be read".into()
    } else {
        "request failed".into()
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
        // A buyer that accepts connections and never answers.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let client = BuyerClient::with_total_in_flight(1).unwrap();
        let (first, second) = (
            Buyer::for_tests("first", &base),
            Buyer::for_tests("second", &base),
        );
        let url = reqwest::Url::parse(&format!("{base}/bid")).unwrap();
        let waiting = client.bid(&first, &url, b"{}".to_vec(), Duration::from_millis(500));
        let refused = async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let started = Instant::now();
            let timed = client
                .bid(&second, &url, b"{}".to_vec(), Duration::from_millis(500))
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
            .bid(&second, &url, b"{}".to_vec(), Duration::from_millis(50))
            .await;
        assert_eq!(after.outcome, Outcome::Timeout);
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
