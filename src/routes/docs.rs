//! `GET /openapi.json`: the API's description, generated from the code.

use std::sync::OnceLock;

use actix_web::HttpResponse;

use crate::error::ApiError;

/// This document.
///
/// No key. The OpenAPI description of every endpoint, generated from the handlers.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    responses((status = 200, description = "An OpenAPI 3.1 document.", body = Object))
)]
pub async fn openapi_json() -> Result<HttpResponse, ApiError> {
    // The document is the same for the life of the process: render it once.
    static DOCUMENT: OnceLock<Result<String, String>> = OnceLock::new();
    let rendered = DOCUMENT.get_or_init(|| crate::openapi::json().map_err(|e| e.to_string()));
    match rendered {
        Ok(text) => Ok(HttpResponse::Ok()
            .content_type("application/json")
            .body(text.as_str())),
        Err(e) => Err(ApiError::internal(anyhow::anyhow!(
            "rendering the OpenAPI document: {e}"
        ))),
    }
}
