//! Request bodies: JSON only, bounded in size, parsed before anything else looks at them.

use actix_web::{web, HttpRequest};
use futures_util::StreamExt;
use serde_json::{Map, Value};

use crate::domain::{FieldError, Money};
use crate::error::ApiError;

/// Reads the body as a JSON value: 415 if not JSON, 413 past the limit, 400 if malformed.
pub async fn read_json(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<Value, ApiError> {
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence != "application/json"
        && !(essence.starts_with("application/") && essence.ends_with("+json"))
    {
        return Err(ApiError::new(
            actix_web::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the body must be JSON (Content-Type: application/json)",
        ));
    }
    let too_large = || {
        ApiError::new(
            actix_web::http::StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the body must be at most {limit} bytes"),
        )
    };
    let declared = req
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let mut bytes = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| ApiError::malformed_json())?;
        if bytes.len() + chunk.len() > limit {
            return Err(too_large());
        }
        bytes.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&bytes).map_err(|_| ApiError::malformed_json())
}

/// Takes named keys out of a JSON object, collecting every problem for one 422.
pub struct Fields {
    object: Map<String, Value>,
    pub errors: Vec<FieldError>,
}

impl Fields {
    pub fn new(value: Value) -> Result<Fields, ApiError> {
        match value {
            Value::Object(object) => Ok(Fields {
                object,
                errors: Vec::new(),
            }),
            _ => Err(ApiError::invalid_field(
                "body",
                "invalid_type",
                "the body must be a JSON object",
            )),
        }
    }

    pub fn string(&mut self, name: &str, required: bool, len_max: usize) -> Option<String> {
        match self.object.remove(name) {
            None | Some(Value::Null) => {
                if required {
                    self.errors
                        .push(FieldError::new(name, "required", "is required"));
                }
                None
            }
            Some(Value::String(s)) if !s.is_empty() && s.chars().count() <= len_max => Some(s),
            Some(Value::String(_)) => {
                self.errors.push(FieldError::new(
                    name,
                    "invalid_length",
                    format!("must be 1 to {len_max} characters"),
                ));
                None
            }
            Some(_) => {
                self.errors
                    .push(FieldError::new(name, "invalid_type", "must be a string"));
                None
            }
        }
    }

    pub fn object(&mut self, name: &str) -> Option<Map<String, Value>> {
        match self.object.remove(name) {
            Some(Value::Object(map)) => Some(map),
            None | Some(Value::Null) => {
                self.errors
                    .push(FieldError::new(name, "required", "is required"));
                None
            }
            Some(_) => {
                self.errors.push(FieldError::new(
                    name,
                    "invalid_type",
                    "must be a JSON object",
                ));
                None
            }
        }
    }

    pub fn money(&mut self, name: &str) -> Option<Money> {
        match self.object.remove(name) {
            None | Some(Value::Null) => None,
            Some(value) => match Money::from_request_json(&value) {
                Ok(m) => Some(m),
                Err(e) => {
                    self.errors.push(FieldError::new(
                        name,
                        "invalid_amount",
                        format!("amount {e}"),
                    ));
                    None
                }
            },
        }
    }

    /// Ends the parse: unknown keys are errors, and any error is a 422.
    pub fn finish(mut self) -> Result<(), ApiError> {
        for name in self.object.keys() {
            self.errors.push(FieldError::new(
                name,
                "unknown_field",
                "is not a field of this request",
            ));
        }
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::validation(
                "validation_failed",
                "the request is not valid",
                self.errors,
            ))
        }
    }
}
