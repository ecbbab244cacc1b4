//! Liveness and readiness.

use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use super::responses::Unavailable;
use crate::error::ApiError;
use crate::exchange::Exchange;

/// The process is up.
#[derive(Serialize, ToSchema)]
pub struct Health {
    #[schema(value_type = String, example = "ok")]
    pub status: &'static str,
}

/// The dependencies answer.
#[derive(Serialize, ToSchema)]
pub struct Readiness {
    #[schema(value_type = String, example = "ready")]
    pub status: &'static str,
    #[schema(value_type = String, example = "ok")]
    pub database: &'static str,
}

/// Liveness.
///
/// No key. The process is up and answering.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses((status = 200, description = "Up.", body = Health))
)]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok" })
}

/// Readiness.
///
/// No key. Ready when the database answers (and Redis, once configured).
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses((status = 200, description = "Ready.", body = Readiness), Unavailable)
)]
pub async fn readyz(exchange: web::Data<Exchange>) -> Result<HttpResponse, ApiError> {
    let check =
        tokio::time::timeout(std::time::Duration::from_secs(2), exchange.store.check()).await;
    match check {
        Ok(Ok(())) => Ok(HttpResponse::Ok().json(Readiness {
            status: "ready",
            database: "ok",
        })),
        Ok(Err(e)) => Err(ApiError::unavailable(
            anyhow::anyhow!(e).context("readiness: database"),
        )),
        Err(_) => Err(ApiError::unavailable(anyhow::anyhow!(
            "readiness: database check timed out"
        ))),
    }
}
