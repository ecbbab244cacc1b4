//! The error responses many endpoints share, for their `#[utoipa::path(responses(...))]`.
//! Errors particular to one endpoint (404, 409, 410, 422) are written beside its handler.

use std::collections::BTreeMap;

use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{ContentBuilder, Ref, RefOr};
use utoipa::{IntoResponses, ToSchema};

use crate::error::ErrorBody;

type Responses = BTreeMap<String, RefOr<Response>>;

/// A response whose body is the error JSON.
fn error(description: &str) -> ResponseBuilder {
    let content = ContentBuilder::new()
        .schema(Some(Ref::from_schema_name(ErrorBody::name())))
        .build();
    ResponseBuilder::new()
        .description(description)
        .content("application/json", content)
}

/// An error response that says when to try again.
fn error_with_retry_after(description: &str) -> Response {
    let seconds = ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(1));
    error(description)
        .header(
            "Retry-After",
            HeaderBuilder::new()
                .schema(seconds)
                .description(Some("Seconds to wait before trying again."))
                .build(),
        )
        .build()
}

fn responses(list: Vec<(u16, Response)>) -> Responses {
    list.into_iter()
        .map(|(status, response)| (status.to_string(), RefOr::T(response)))
        .collect()
}

/// 401 and 403: every endpoint that takes an API key.
pub struct AuthErrors;

impl IntoResponses for AuthErrors {
    fn responses() -> Responses {
        responses(vec![
            (
                401,
                error(
                    "`unauthorized`: no `Authorization` header, a scheme other than Bearer, \
                     or an unknown key.",
                )
                .build(),
            ),
            (
                403,
                error("`forbidden`: a valid key of a role this endpoint does not serve.").build(),
            ),
        ])
    }
}

/// 400, 413 and 415: every endpoint that reads a JSON body.
pub struct BodyErrors;

impl IntoResponses for BodyErrors {
    fn responses() -> Responses {
        responses(vec![
            (
                400,
                error("`malformed_json`: the body is not valid JSON.").build(),
            ),
            (
                413,
                error("`body_too_large`: the body is over the limit (64 KiB by default).").build(),
            ),
            (
                415,
                error("`unsupported_media_type`: the body is not `application/json`.").build(),
            ),
        ])
    }
}

/// 429: the seller's ping and post rate limit.
pub struct RateLimited;

impl IntoResponses for RateLimited {
    fn responses() -> Responses {
        responses(vec![(
            429,
            error_with_retry_after("`rate_limited`: over this seller's rate limit."),
        )])
    }
}

/// 503: the database (or Redis) is unreachable, or the server is shutting down.
pub struct Unavailable;

impl IntoResponses for Unavailable {
    fn responses() -> Responses {
        responses(vec![(
            503,
            error_with_retry_after(
                "`unavailable`: a dependency is unreachable or the server is stopping; \
                 nothing was written.",
            ),
        )])
    }
}
