//! Liveness and readiness.

use std::time::Duration;

use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use super::responses::Unavailable;
use crate::error::ApiError;
use crate::exchange::Exchange;

/// Longest a readiness probe waits on one dependency.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

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
    /// Redis when configured, else the in-process state.
    #[schema(value_type = String, example = "ok")]
    pub shared_state: &'static str,
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
/// No key. Ready when the database answers, and the shared state (Redis, when configured)
/// does.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses((status = 200, description = "Ready.", body = Readiness), Unavailable)
)]
pub async fn readyz(exchange: web::Data<Exchange>) -> Result<HttpResponse, ApiError> {
    match tokio::time::timeout(CHECK_TIMEOUT, exchange.store.check()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            return Err(ApiError::unavailable(
                anyhow::anyhow!(e).context("readiness: database"),
            ))
        }
        Err(_) => {
            return Err(ApiError::unavailable(anyhow::anyhow!(
                "readiness: database check timed out"
            )))
        }
    }
    match tokio::time::timeout(CHECK_TIMEOUT, exchange.state.check()).await {
        Ok(Ok(())) => Ok(HttpResponse::Ok().json(Readiness {
            status: "ready",
            database: "ok",
            shared_state: "ok",
        })),
        Ok(Err(e)) => Err(ApiError::unavailable(e.context("readiness: shared state"))),
        Err(_) => Err(ApiError::unavailable(anyhow::anyhow!(
            "readiness: shared state check timed out"
        ))),
    }
}
