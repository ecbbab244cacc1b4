//! `POST /v1/posts` and the direct post `POST /v1/leads`.

use std::time::Instant;

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::authenticate;
use super::body::{read_json, Fields};
use super::pings::{canonical_hash, parse_ping, with_idempotency, IdempotencyKey};
use super::responses::{AuthErrors, BodyErrors, RateLimited, Unavailable};
use crate::domain::ids::looks_like_id;
use crate::domain::Money;
use crate::error::{ApiError, ErrorBody};
use crate::exchange::{Exchange, PostInput, PostResult};

/// The body of `POST /v1/posts`.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PostRequest {
    /// The ping this lead was offered for.
    #[schema(
        min_length = 1,
        max_length = 64,
        example = "ping_0190f3a2b7c47d2e9a3b5c6d7e8f9a0b"
    )]
    pub ping_id: String,
    /// The full lead, PII included: its non-PII fields must equal the pinged ones.
    #[schema(value_type = Object, example = json!({"zip": "33101", "state": "FL", "age": 34,
        "first_name": "Ana", "last_name": "Diaz", "email": "ana@example.com", "phone": "3055550100"}))]
    pub lead: Map<String, Value>,
}

/// The body of `POST /v1/leads`: a ping's body with the full lead.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DirectPostRequest {
    /// The vertical's id.
    #[schema(min_length = 1, max_length = 64, example = "auto_insurance")]
    pub vertical: String,
    /// The full lead, PII included, each field as the vertical defines it. Bidders see only
    /// its non-PII fields.
    #[schema(value_type = Object, example = json!({"zip": "33101", "state": "FL", "age": 34,
        "first_name": "Ana", "last_name": "Diaz", "email": "ana@example.com", "phone": "3055550100"}))]
    pub lead: Map<String, Value>,
    /// The seller's own tag (campaign, source), kept with the ping.
    #[schema(min_length = 1, max_length = 128)]
    pub sub_id: Option<String>,
    /// The seller's minimum price for this lead.
    #[schema(schema_with = crate::domain::money::input_schema)]
    pub floor: Option<Money>,
}

/// Post: deliver the full lead for an offer.
///
/// **Seller key.** Checks the full lead and that its non-PII fields equal the pinged ones,
/// then delivers it to the winning buyer, falling back to the next bidders in price order
/// (up to `auction.max_post_attempts`), and books the sale. After a 422 the offer still
/// stands. The same body again answers the first result, never a second sale.
#[utoipa::path(
    post,
    path = "/v1/posts",
    tag = "seller",
    security(("bearer" = [])),
    request_body = PostRequest,
    responses(
        (status = 200, description = "`sold` (with lead_id and payout) or `unsold` (with reason).", body = PostResult),
        (status = 404, description = "`ping_not_found`: no such ping from this seller.", body = ErrorBody),
        (status = 409, description = "`already_posted`: posted before with another body; `post_in_progress`; `no_offer`: the ping had no bid.", body = ErrorBody),
        (status = 410, description = "`offer_expired`.", body = ErrorBody),
        (status = 422, description = "`lead_mismatch`: a pinged field differs; `validation_failed`: the full lead or the body is not valid.", body = ErrorBody),
        AuthErrors, BodyErrors, RateLimited, Unavailable,
    )
)]
pub async fn create(
    req: HttpRequest,
    payload: web::Payload,
    exchange: web::Data<Exchange>,
) -> Result<HttpResponse, ApiError> {
    let seller = authenticate(&req, &exchange)?.seller()?;
    exchange.admit(&seller).await?;
    let value = read_json(&req, payload, exchange.config.body_limit_bytes).await?;
    let body_hash = canonical_hash(&exchange, &value);
    let mut fields = Fields::new(value)?;
    let ping_id = fields.string("ping_id", true, 64);
    let lead = fields.object("lead");
    fields.finish()?;
    let (Some(ping_id), Some(lead)) = (ping_id, lead) else {
        return Err(ApiError::internal(anyhow::anyhow!(
            "required fields passed the parse"
        )));
    };
    if !looks_like_id("ping", &ping_id) {
        return Err(ApiError::not_found(
            "ping_not_found",
            "no ping with this id was sent by this seller",
        ));
    }
    let result = exchange
        .post(
            &seller,
            PostInput {
                ping_id,
                lead,
                body_hash,
            },
        )
        .await?;
    Ok(HttpResponse::Ok().json(result))
}

/// Direct post: ping and post in one call.
///
/// **Seller key.** The full lead is validated before any buyer is contacted; then the
/// auction runs on its non-PII fields and the lead goes to the winner as for
/// `POST /v1/posts`. No valid bid is `unsold` with reason `no_bid`.
#[utoipa::path(
    post,
    path = "/v1/leads",
    tag = "seller",
    security(("bearer" = [])),
    params(IdempotencyKey),
    request_body = DirectPostRequest,
    responses(
        (status = 200, description = "`sold` (with lead_id and payout) or `unsold` (with reason), and the ping's id.", body = PostResult),
        (status = 404, description = "`unknown_vertical`.", body = ErrorBody),
        (status = 409, description = "`idempotency_key_reused` or `idempotency_in_progress`.", body = ErrorBody),
        (status = 422, description = "`validation_failed` naming each field at fault; no buyer was contacted.", body = ErrorBody),
        AuthErrors, BodyErrors, RateLimited, Unavailable,
    )
)]
pub async fn direct(
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
        exchange
            .direct_post(&seller, input, &body_hash, received)
            .await
    })
    .await
}
