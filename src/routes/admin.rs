//! The operator's API: pause and resume buyers, reload the buyers directory; and metrics.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use super::responses::AuthErrors;
use super::{authenticate, Caller};
use crate::error::{ApiError, ErrorBody};
use crate::exchange::Exchange;

/// A buyer's status after a pause or a resume.
#[derive(Serialize, ToSchema)]
pub struct BuyerStatus {
    pub buyer_id: String,
    pub status: PauseState,
}

#[derive(Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PauseState {
    Active,
    Paused,
}

/// The answer to a reload.
#[derive(Serialize, ToSchema)]
pub struct Reloaded {
    #[schema(value_type = String, example = "reloaded")]
    pub status: &'static str,
    /// How many buyers the new configuration has.
    pub buyers: usize,
}

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
    Ok(HttpResponse::Ok().json(BuyerStatus {
        buyer_id: buyer_id.to_string(),
        status: if paused {
            PauseState::Paused
        } else {
            PauseState::Active
        },
    }))
}

/// Pause a buyer.
///
/// **Admin key.** From the next ping on, the buyer gets no bid request; auctions already
/// running finish as they started.
#[utoipa::path(
    post,
    path = "/v1/admin/buyers/{buyer_id}/pause",
    tag = "admin",
    security(("bearer" = [])),
    params(("buyer_id" = String, Path, description = "The buyer's id, as in its file.", example = "summit-insurance")),
    responses(
        (status = 200, description = "Paused.", body = BuyerStatus),
        (status = 404, description = "`buyer_not_found`.", body = ErrorBody),
        AuthErrors,
    )
)]
pub async fn pause(
    req: HttpRequest,
    exchange: web::Data<Exchange>,
) -> Result<HttpResponse, ApiError> {
    set_paused(req, exchange, true).await
}

/// Resume a paused buyer.
///
/// **Admin key.** From the next ping on, the buyer is eligible again.
#[utoipa::path(
    post,
    path = "/v1/admin/buyers/{buyer_id}/resume",
    tag = "admin",
    security(("bearer" = [])),
    params(("buyer_id" = String, Path, description = "The buyer's id, as in its file.", example = "summit-insurance")),
    responses(
        (status = 200, description = "Active.", body = BuyerStatus),
        (status = 404, description = "`buyer_not_found`.", body = ErrorBody),
        AuthErrors,
    )
)]
pub async fn resume(
    req: HttpRequest,
    exchange: web::Data<Exchange>,
) -> Result<HttpResponse, ApiError> {
    set_paused(req, exchange, false).await
}

/// Reload the buyers directory.
///
/// **Admin key.** Re-reads every buyer file (SIGHUP does the same). A bad file is refused
/// with the file and the key named, and the running configuration stays as it was.
#[utoipa::path(
    post,
    path = "/v1/admin/reload",
    tag = "admin",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Reloaded.", body = Reloaded),
        (status = 422, description = "`invalid_configuration`: the message names the file, the key and the problem.", body = ErrorBody),
        AuthErrors,
    )
)]
pub async fn reload(
    req: HttpRequest,
    exchange: web::Data<Exchange>,
) -> Result<HttpResponse, ApiError> {
    let admin = require_admin(&req, &exchange)?;
    let buyers = exchange
        .reload()
        .map_err(|e| ApiError::validation("invalid_configuration", &e.to_string(), vec![]))?;
    tracing::info!(admin = %admin, buyers, "buyers directory reloaded");
    Ok(HttpResponse::Ok().json(Reloaded {
        status: "reloaded",
        buyers,
    }))
}

/// Prometheus metrics.
///
/// No key. Text exposition format; every metric name starts with `pingpost_`.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses(
        (status = 200, description = "The metrics.", body = String, content_type = "text/plain"),
    )
)]
pub async fn metrics() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(crate::metrics::METRICS.render())
}
