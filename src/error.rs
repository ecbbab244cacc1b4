//! The API's one error type, rendered as the contract's error JSON.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::FieldError;
use crate::store::StoreError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub fields: Vec<FieldError>,
    pub retry_after_s: Option<u64>,
    /// The cause of a 5xx: logged, never sent.
    pub source: Option<anyhow::Error>,
}

/// The body of every error response.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"error": {"code": "validation_failed", "message": "the lead is not valid",
    "fields": [{"field": "zip", "code": "invalid_format", "message": "must be 5 digits"}]}}))]
pub struct ErrorBody<'a> {
    pub error: ErrorDetail<'a>,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail<'a> {
    /// A stable, machine-readable code, e.g. `validation_failed`, `unauthorized`, `rate_limited`.
    pub code: &'a str,
    /// For people; never echoes a personal value.
    pub message: &'a str,
    /// Each field at fault, when there are any.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub fields: &'a [FieldError],
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            fields: Vec::new(),
            retry_after_s: None,
            source: None,
        }
    }

    pub fn with_fields(mut self, fields: Vec<FieldError>) -> ApiError {
        self.fields = fields;
        self
    }

    pub fn malformed_json() -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            "the request body is not valid JSON",
        )
    }

    pub fn unauthorized(message: &str) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn forbidden() -> ApiError {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this API key may not use this endpoint",
        )
    }

    pub fn not_found(code: &'static str, message: &str) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, code, message)
    }

    pub fn conflict(code: &'static str, message: &str) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, code, message)
    }

    pub fn validation(code: &'static str, message: &str, fields: Vec<FieldError>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message).with_fields(fields)
    }

    pub fn invalid_field(field: &str, code: &str, message: &str) -> ApiError {
        ApiError::validation(
            "validation_failed",
            "the request is not valid",
            vec![FieldError::new(field, code, message)],
        )
    }

    pub fn rate_limited(retry_after_s: u64) -> ApiError {
        let mut e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many requests for this seller; retry later",
        );
        e.retry_after_s = Some(retry_after_s.max(1));
        e
    }

    pub fn unavailable(source: anyhow::Error) -> ApiError {
        let mut e = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the service is temporarily unavailable; retry later",
        );
        e.retry_after_s = Some(1);
        e.source = Some(source);
        e
    }

    pub fn internal(source: anyhow::Error) -> ApiError {
        let mut e = ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "an internal error occurred",
        );
        e.source = Some(source);
        e
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        match error {
            StoreError::Unavailable(e) => {
                crate::metrics::METRICS
                    .dependency_errors
                    .with_label_values(&["database"])
                    .inc();
                ApiError::unavailable(e)
            }
            StoreError::CapExceeded => {
                ApiError::internal(anyhow::anyhow!("unexpected cap refusal"))
            }
            StoreError::Conflict(m) => {
                ApiError::internal(anyhow::anyhow!("unexpected conflict: {m}"))
            }
            StoreError::Other(e) => ApiError::internal(e),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        if let Some(source) = &self.source {
            tracing::error!(
                status = self.status.as_u16(),
                error = format!("{source:#}"),
                "request failed"
            );
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: &self.message,
                fields: &self.fields,
            },
        };
        let mut response = HttpResponse::build(self.status);
        if let Some(seconds) = self.retry_after_s {
            response.insert_header(("Retry-After", seconds.to_string()));
        }
        response.json(body)
    }
}
