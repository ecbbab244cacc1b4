//! Liveness and readiness.

use std::time::Duration;

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::error::ApiError;
use crate::exchange::Exchange;

/// Longest a readiness probe waits on one dependency.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Ready when the database answers, and the shared state (Redis, when configured) does.
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
        Ok(Ok(())) => Ok(HttpResponse::Ok()
            .json(json!({"status": "ready", "database": "ok", "shared_state": "ok"}))),
        Ok(Err(e)) => Err(ApiError::unavailable(e.context("readiness: shared state"))),
        Err(_) => Err(ApiError::unavailable(anyhow::anyhow!(
            "readiness: shared state check timed out"
        ))),
    }
}
