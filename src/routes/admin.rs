//! The operator's API: pause and resume buyers, reload the buyers directory; and metrics.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::{authenticate, Caller};
use crate::error::ApiError;
use crate::exchange::Exchange;

fn require_admin(req: &HttpRequest, exchange: &Exchange) -> Result<String, ApiError> {
    match authenticate(req, exchange)? {
        Caller::Admin(name) => Ok(name),
        _ => Err(ApiError::forbidden()),
    }
}

async fn set_paused(
    req: HttpRequest,
    exchange: web::Data<Exchange>,
    paused: bool,
) -> Result<HttpResponse, ApiError> {
    let admin = require_admin(&req, &exchange)?;
    let buyer_id = req.match_info().get("buyer_id").unwrap_or_default();
    if exchange.marketplace().buyer(buyer_id).is_none() {
        return Err(ApiError::not_found(
            "buyer_not_found",
            "no buyer has this id",
        ));
    }
    exchange.set_paused(buyer_id, paused);
    tracing::info!(admin = %admin, buyer = %buyer_id, paused, "buyer status changed");
    let status = if paused { "paused" } else { "active" };
    Ok(HttpResponse::Ok().json(json!({"buyer_id": buyer_id, "status": status})))
}

pub async fn pause(
    req: HttpRequest,
    exchange: web::Data<Exchange>,
) -> Result<HttpResponse, ApiError> {
    set_paused(req, exchange, true).await
}

pub async fn resume(
    req: HttpRequest,
    exchange: web::Data<Exchange>,
) -> Result<HttpResponse, ApiError> {
    set_paused(req, exchange, false).await
}

/// Re-reads the buyers directory; a bad file changes nothing and is named in the answer.
pub async fn reload(
    req: HttpRequest,
    exchange: web::Data<Exchange>,
) -> Result<HttpResponse, ApiError> {
    let admin = require_admin(&req, &exchange)?;
    let buyers = exchange
        .reload()
        .map_err(|e| ApiError::validation("invalid_configuration", &e.to_string(), vec![]))?;
    tracing::info!(admin = %admin, buyers, "buyers directory reloaded");
    Ok(HttpResponse::Ok().json(json!({"status": "reloaded", "buyers": buyers})))
}

pub async fn metrics() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(crate::metrics::METRICS.render())
}
