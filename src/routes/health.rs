//! Liveness and readiness.

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::error::ApiError;
use crate::exchange::Exchange;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Ready when the database answers (and Redis, once configured).
pub async fn readyz(exchange: web::Data<Exchange>) -> Result<HttpResponse, ApiError> {
    let check =
        tokio::time::timeout(std::time::Duration::from_secs(2), exchange.store.check()).await;
    match check {
        Ok(Ok(())) => Ok(HttpResponse::Ok().json(json!({"status": "ready", "database": "ok"}))),
        Ok(Err(e)) => Err(ApiError::unavailable(
            anyhow::anyhow!(e).context("readiness: database"),
        )),
        Err(_) => Err(ApiError::unavailable(anyhow::anyhow!(
            "readiness: database check timed out"
        ))),
    }
}
