//! `POST /v1/pings` and `GET /v1/pings/{ping_id}`.

use std::future::Future;
use std::time::{Duration, Instant};

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use super::body::{read_json, Fields};
use super::responses::{AuthErrors, BodyErrors, RateLimited, Unavailable};
use super::{authenticate, json_text};
use crate::config::Seller;
use crate::domain::ids::looks_like_id;
use crate::domain::Money;
use crate::error::{ApiError, ErrorBody};
use crate::exchange::{Exchange, PingInput, PingView};
use crate::state::IdempotencyBegin;

/// How long an `Idempotency-Key` is remembered.
const IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// The body of `POST /v1/pings`, as `parse_ping` reads it.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"vertical": "auto_insurance", "lead": {"zip": "33101", "state": "FL", "age": 34},
    "sub_id": "camp-7", "floor": "5.00"}))]
pub struct PingRequest {
    /// The vertical's id.
    #[schema(min_length = 1, max_length = 64, example = "auto_insurance")]
    pub vertical: String,
    /// The lead's non-PII fields, each as the vertical defines it. Required non-PII fields
    /// must be there; a PII field is a 422 `pii_in_ping`; an unknown field a 422.
    #[schema(value_type = Object)]
    pub lead: Map<String, Value>,
    /// The seller's own tag (campaign, source), kept with the ping.
    #[schema(min_length = 1, max_length = 128)]
    pub sub_id: Option<String>,
    /// The seller's minimum price for this lead; the effective floor is the highest of this,
    /// the vertical's, the seller's and the buyer's.
    #[schema(schema_with = crate::domain::money::input_schema)]
    pub floor: Option<Money>,
}

/// The optional `Idempotency-Key` header of `POST /v1/pings` and `POST /v1/leads`.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
pub struct IdempotencyKey {
    /// 1 to 255 visible ASCII characters. For 24 hours, the same key with the same body
    /// replays the first response without a second auction; with another body it is a 409.
    #[param(
        rename = "Idempotency-Key",
        nullable = false,
        min_length = 1,
        max_length = 255
    )]
    pub idempotency_key: Option<String>,
}

/// Ping: auction a redacted lead.
///
/// **Seller key.** Validates the lead's non-PII fields against the vertical, asks every
/// eligible buyer for a bid in parallel, and answers within the auction deadline with an
/// offer (the seller's payout and when it expires) or `no_bid`. Post the full lead with
/// `POST /v1/posts` before the offer expires.
#[utoipa::path(
    post,
    path = "/v1/pings",
    tag = "seller",
    security(("bearer" = [])),
    params(IdempotencyKey),
    request_body = PingRequest,
    responses(
        (status = 200, description = "`offer` (with payout, currency, expires_at) or `no_bid`.", body = PingView),
        (status = 404, description = "`unknown_vertical`.", body = ErrorBody),
        (status = 409, description = "`idempotency_key_reused`: this `Idempotency-Key` came with another body; `idempotency_in_progress`: its first request is still running.", body = ErrorBody),
        (status = 422, description = "`pii_in_ping` naming each PII field present; `validation_failed` naming each field at fault (bad type, out of range, unknown, missing), or a bad `Idempotency-Key`.", body = ErrorBody),
        AuthErrors, BodyErrors, RateLimited, Unavailable,
    )
)]
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

/// A ping as its seller sees it.
///
/// **Seller key** (only the seller that sent the ping sees it). `status` is `offer`,
/// `no_bid`, `sold`, `unsold` or `expired`.
#[utoipa::path(
    get,
    path = "/v1/pings/{ping_id}",
    tag = "seller",
    security(("bearer" = [])),
    params(("ping_id" = String, Path, description = "The ping's id, as `POST /v1/pings` answered it.", example = "ping_0190f3a2b7c47d2e9a3b5c6d7e8f9a0b")),
    responses(
        (status = 200, description = "The ping.", body = PingView),
        (status = 404, description = "`ping_not_found`: no such ping from this seller.", body = ErrorBody),
        AuthErrors, Unavailable,
    )
)]
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
