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
    http: reqwest::Client,
    in_flight: Arc<Mutex<HashMap<String, Arc<Semaphore>>>>,
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

impl BuyerClient {
    pub fn new() -> anyhow::Result<BuyerClient> {
        let http = reqwest::Client::builder()
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(2))
            // Below the keep-alive of common servers, so a pooled connection is not reused
            // just as the buyer closes it.
            .pool_idle_timeout(Duration::from_secs(4))
            .pool_max_idle_per_host(256)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("pingpost/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(BuyerClient {
            http,
            in_flight: Arc::default(),
        })
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
        url: &str,
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
        url: &str,
        body: Vec<u8>,
        timeout: Duration,
        parse: impl FnOnce(u16, &[u8]) -> Result<T, String>,
    ) -> Timed<T> {
        let started = Instant::now();
        let semaphore = self.semaphore(buyer);
        let outcome = match semaphore.try_acquire() {
            Err(_) => Outcome::Error("too many requests in flight to this buyer".into()),
            Ok(_permit) => {
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
        url: &str,
        body: Vec<u8>,
    ) -> Result<(u16, Vec<u8>), String> {
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let signature = signature(buyer.signing_secret.expose(), timestamp, &body);
        let mut response = self
            .http
            .post(url)
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

    #[test]
    fn signature_is_hmac_of_timestamp_dot_body() {
        // Computed independently (Python's hmac) for key "secret", message "1700000000.{}".
        let expected = "v1=b8569b78799ff9e3cbff0fc2d63a33a2b57f3282abd07c37ae5e8e7d79a5f163";
        assert_eq!(signature("secret", 1_700_000_000, b"{}"), expected);
        assert_ne!(signature("other", 1_700_000_000, b"{}"), expected);
    }
}
