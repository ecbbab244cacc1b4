//! `POST /v1/posts` and the direct post `POST /v1/leads`.

use std::time::Instant;

use actix_web::{web, HttpRequest, HttpResponse};

use super::authenticate;
use super::body::{read_json, Fields};
use super::pings::{canonical_hash, parse_ping, with_idempotency};
use crate::domain::ids::looks_like_id;
use crate::error::ApiError;
use crate::exchange::{Exchange, PostInput};

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
