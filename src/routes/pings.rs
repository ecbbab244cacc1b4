//! `POST /v1/pings` and `GET /v1/pings/{ping_id}`.

use std::future::Future;
use std::time::{Duration, Instant};

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::Value;

use super::body::{read_json, Fields};
use super::{authenticate, json_text};
use crate::config::Seller;
use crate::domain::ids::looks_like_id;
use crate::error::ApiError;
use crate::exchange::{Exchange, PingInput};
use crate::state::IdempotencyBegin;

/// How long an `Idempotency-Key` is remembered.
const IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 60 * 60);

pub async fn create(
    req: HttpRequest,
    payload: web::Payload,
    exchange: web::Data<Exchange>,
) -> Result<HttpResponse, ApiError> {
    let received = Instant::now();
    let seller = authenticate(&req, &exchange)?.seller()?;
    exchange.admit(&seller).await?;
    let value = read_json(&req, payload, exchange.config.body_limit_bytes).await?;
    let body_hash = canonical_hash(&exchange, &value);
    with_idempotency(&req, &exchange, &seller, &body_hash, async {
        let input = parse_ping(value)?;
        let view = exchange.ping(&seller, input, received).await?;
        serde_json::to_value(view).map_err(|e| ApiError::internal(e.into()))
    })
    .await
}

pub async fn show(
    req: HttpRequest,
    exchange: web::Data<Exchange>,
) -> Result<HttpResponse, ApiError> {
    let seller = authenticate(&req, &exchange)?.seller()?;
    let ping_id = req.match_info().get("ping_id").unwrap_or_default();
    if !looks_like_id("ping", ping_id) {
        return Err(ApiError::not_found(
            "ping_not_found",
            "no ping with this id was sent by this seller",
        ));
    }
    Ok(HttpResponse::Ok().json(exchange.ping_view(&seller, ping_id).await?))
}

/// A ping's body, or the body of a direct post: `{vertical, lead, sub_id?, floor?}`.
pub fn parse_ping(value: Value) -> Result<PingInput, ApiError> {
    let mut fields = Fields::new(value)?;
    let vertical = fields.string("vertical", true, 64);
    let lead = fields.object("lead");
    let sub_id = fields.string("sub_id", false, 128);
    let floor = fields.money("floor");
    fields.finish()?;
    match (vertical, lead) {
        (Some(vertical), Some(lead)) => Ok(PingInput {
            vertical,
            lead,
            sub_id,
            floor,
        }),
        _ => Err(ApiError::internal(anyhow::anyhow!(
            "required fields passed the parse"
        ))),
    }
}

/// A keyed hash of the body in canonical form (sorted keys), so the same JSON written
/// differently is the same body, and no personal data is kept in clear.
pub fn canonical_hash(exchange: &Exchange, value: &Value) -> String {
    exchange.keyed_hash(value.to_string().as_bytes())
}

/// Runs `work` once per `Idempotency-Key`: a repeat with the same body gets the first
/// response, another body a 409. Only successes are remembered; a failed request frees its key.
pub async fn with_idempotency<F>(
    req: &HttpRequest,
    exchange: &Exchange,
    seller: &Seller,
    body_hash: &str,
    work: F,
) -> Result<HttpResponse, ApiError>
where
    F: Future<Output = Result<Value, ApiError>>,
{
    let Some(header) = req.headers().get("idempotency-key") else {
        return Ok(HttpResponse::Ok().json(work.await?));
    };
    let key = header
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= 255)
        .ok_or_else(|| {
            ApiError::invalid_field(
                "Idempotency-Key",
                "invalid_format",
                "must be 1 to 255 visible ASCII characters",
            )
        })?;
    let state = &exchange.state;
    let begin = state
        .idempotency_begin(&seller.id, key, body_hash, IDEMPOTENCY_TTL)
        .await
        .map_err(ApiError::unavailable)?;
    match begin {
        IdempotencyBegin::Replay(response) => return Ok(json_text(response)),
        IdempotencyBegin::Mismatch => {
            return Err(ApiError::conflict(
                "idempotency_key_reused",
                "this Idempotency-Key was used with a different body",
            ))
        }
        IdempotencyBegin::InProgress => {
            return Err(ApiError::conflict(
                "idempotency_in_progress",
                "a request with this Idempotency-Key is still running",
            ))
        }
        IdempotencyBegin::Started => {}
    }
    match work.await {
        Ok(value) => {
            let text = value.to_string();
            if let Err(e) = state
                .idempotency_complete(&seller.id, key, body_hash, &text, IDEMPOTENCY_TTL)
                .await
            {
                tracing::warn!(error = %e, "could not record an idempotent response");
            }
            Ok(json_text(text))
        }
        Err(error) => {
            if let Err(e) = state.idempotency_abandon(&seller.id, key).await {
                tracing::warn!(error = %e, "could not free an idempotency key");
            }
            Err(error)
        }
    }
}
