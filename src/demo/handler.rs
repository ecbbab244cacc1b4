//! The one request handler of the demo buyers: check the signature, wait, answer as configured.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use uuid::Uuid;

use super::behaviour::{happens, Kind};
use super::routes::Route;

/// Largest request body a demo buyer reads; the exchange's own limit is the same.
pub const BODY_BYTES_MAX: usize = 64 * 1024;

/// A signed request older (or newer) than this is refused, so a captured one cannot be replayed.
pub const TIMESTAMP_SKEW_S_MAX: u64 = 300;

/// Every endpoint by the port it was bound on and its path.
pub type Table = HashMap<(u16, String), Arc<Route>>;

/// Why a request's signature does not hold; said in the log, not to the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureError {
    MissingTimestamp,
    StaleTimestamp,
    MissingSignature,
    Mismatch,
}

impl SignatureError {
    fn name(self) -> &'static str {
        match self {
            SignatureError::MissingTimestamp => "missing_timestamp",
            SignatureError::StaleTimestamp => "stale_timestamp",
            SignatureError::MissingSignature => "missing_signature",
            SignatureError::Mismatch => "bad_signature",
        }
    }
}

/// Checks `X-Pingpost-Signature: v1=<hex HMAC-SHA256(secret, timestamp + "." + body)>`
/// in constant time, and that the timestamp is within five minutes of `now_s`.
pub fn verify(
    secret: &str,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now_s: u64,
) -> Result<(), SignatureError> {
    let timestamp: u64 = timestamp
        .and_then(|t| t.trim().parse().ok())
        .ok_or(SignatureError::MissingTimestamp)?;
    if timestamp.abs_diff(now_s) > TIMESTAMP_SKEW_S_MAX {
        return Err(SignatureError::StaleTimestamp);
    }
    let signature = signature
        .and_then(|s| s.trim().strip_prefix("v1="))
        .and_then(|hex_text| hex::decode(hex_text).ok())
        .ok_or(SignatureError::MissingSignature)?;
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).map_err(|_| SignatureError::Mismatch)?;
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&signature)
        .map_err(|_| SignatureError::Mismatch)
}

fn header<'a>(request: &'a HttpRequest, name: &str) -> Option<&'a str> {
    request.headers().get(name).and_then(|v| v.to_str().ok())
}

/// A token for a bid or an accepted lead, unique enough to follow in the exchange's records.
fn demo_id(prefix: &str) -> String {
    format!("{prefix}_{}", Uuid::now_v7().simple())
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Answers every request to every demo endpoint.
pub async fn answer(
    request: HttpRequest,
    body: web::Bytes,
    table: web::Data<Table>,
) -> HttpResponse {
    let started = Instant::now();
    let port = request.app_config().local_addr().port();
    let Some(route) = table.get(&(port, request.path().to_string())).cloned() else {
        return HttpResponse::NotFound().json(json!({"error": "no demo buyer at this path"}));
    };
    if request.method() != Method::POST {
        return HttpResponse::MethodNotAllowed().json(json!({"error": "use POST"}));
    }
    let log = |outcome: &str, detail: Option<String>| {
        tracing::info!(
            buyer = %route.buyer_id,
            kind = route.kind.name(),
            outcome,
            detail = detail.as_deref().unwrap_or(""),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "demo buyer answered"
        );
    };
    let signed = verify(
        route.signing_secret.expose(),
        header(&request, "x-pingpost-timestamp"),
        header(&request, "x-pingpost-signature"),
        &body,
        now_s(),
    );
    if let Err(reason) = signed {
        log("unauthorized", Some(reason.name().to_string()));
        return HttpResponse::Unauthorized().json(json!({"error": reason.name()}));
    }
    // Only the shape is checked; a post's lead holds PII and is dropped unread.
    let well_formed = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(object)) => {
            object.get("ping_id").is_some_and(Value::is_string)
                && match route.kind {
                    Kind::Ping => object.get("lead").is_some_and(Value::is_object),
                    Kind::Post => {
                        object.get("lead").is_some_and(Value::is_object)
                            && object.contains_key("price")
                    }
                }
        }
        _ => false,
    };
    if !well_formed {
        log("bad_request", None);
        return HttpResponse::BadRequest().json(json!({"error": "not a pingpost request"}));
    }

    // `ThreadRng` is not `Send`, so every draw happens before the wait.
    let (latency, error, no_bid, reject, price) = {
        let mut rng = rand::thread_rng();
        let b = &route.behaviour;
        (
            b.draw_latency(&mut rng),
            happens(b.error_pct, &mut rng),
            happens(b.no_bid_pct, &mut rng),
            happens(b.reject_pct, &mut rng),
            b.draw_bid(&mut rng),
        )
    };
    tokio::time::sleep(latency).await;

    if error {
        log("error", None);
        return HttpResponse::InternalServerError().json(json!({"error": "demo_error"}));
    }
    match (route.kind, price) {
        (Kind::Ping, _) if no_bid => {
            log("no_bid", None);
            HttpResponse::NoContent().finish()
        }
        (Kind::Ping, Some(price)) => {
            log("bid", Some(price.to_wire()));
            let bid_id = demo_id("bid");
            HttpResponse::Ok().json(json!({"bid": price.to_wire(), "bid_id": bid_id}))
        }
        (Kind::Ping, None) => {
            // A ping route always has a price range: `Behaviour::from_url` insists on one.
            log("no_bid", Some("no price range".into()));
            HttpResponse::NoContent().finish()
        }
        (Kind::Post, _) if reject => {
            log("rejected", None);
            HttpResponse::Ok().json(json!({"accepted": false, "reason": "demo_reject"}))
        }
        (Kind::Post, _) => {
            let buyer_lead_id = demo_id("demo");
            log("accepted", Some(buyer_lead_id.clone()));
            HttpResponse::Ok().json(json!({"accepted": true, "buyer_lead_id": buyer_lead_id}))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buyer_client::signature;

    const SECRET: &str = "demo-secret-0123456789";
    const NOW: u64 = 1_700_000_000;

    fn check(
        timestamp: u64,
        body: &[u8],
        signed_body: &[u8],
        secret: &str,
    ) -> Result<(), SignatureError> {
        let sig = signature(secret, timestamp, signed_body);
        verify(SECRET, Some(&timestamp.to_string()), Some(&sig), body, NOW)
    }

    #[test]
    fn accepts_what_the_exchange_signs() {
        assert_eq!(check(NOW, b"{}", b"{}", SECRET), Ok(()));
        assert_eq!(check(NOW - 300, b"{}", b"{}", SECRET), Ok(()));
    }

    #[test]
    fn refuses_another_body_secret_or_an_old_timestamp() {
        assert_eq!(
            check(NOW, b"{\"a\":1}", b"{}", SECRET),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check(NOW, b"{}", b"{}", "another-secret-0123"),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check(NOW - 301, b"{}", b"{}", SECRET),
            Err(SignatureError::StaleTimestamp)
        );
        assert_eq!(
            check(NOW + 301, b"{}", b"{}", SECRET),
            Err(SignatureError::StaleTimestamp)
        );
    }

    #[test]
    fn refuses_missing_or_malformed_headers() {
        let sig = signature(SECRET, NOW, b"{}");
        assert_eq!(
            verify(SECRET, None, Some(&sig), b"{}", NOW),
            Err(SignatureError::MissingTimestamp)
        );
        assert_eq!(
            verify(SECRET, Some("soon"), Some(&sig), b"{}", NOW),
            Err(SignatureError::MissingTimestamp)
        );
        assert_eq!(
            verify(SECRET, Some("1700000000"), None, b"{}", NOW),
            Err(SignatureError::MissingSignature)
        );
        let unversioned = sig.trim_start_matches("v1=");
        assert_eq!(
            verify(SECRET, Some("1700000000"), Some(unversioned), b"{}", NOW),
            Err(SignatureError::MissingSignature)
        );
    }
}
