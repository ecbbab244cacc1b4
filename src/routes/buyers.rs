//! The buyer's API (returns, statement) and the seller's statement.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::NaiveDate;
use utoipa::{IntoParams, ToSchema};

use super::authenticate;
use super::body::{read_json, Fields};
use super::responses::{AuthErrors, BodyErrors, Unavailable};
use crate::domain::FieldError;
use crate::error::{ApiError, ErrorBody};
use crate::exchange::{Exchange, ReturnReceipt, Statement};
use crate::ledger::{buyer_account, seller_account};

/// The body of `POST /v1/returns`.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReturnRequest {
    /// A lead sold to this buyer.
    #[schema(
        min_length = 1,
        max_length = 64,
        example = "lead_0190f3a2c1d47e2f9a3b5c6d7e8f9a0c"
    )]
    pub lead_id: String,
    /// Why the lead is returned.
    #[schema(min_length = 1, max_length = 200, example = "bad_phone")]
    pub reason: String,
}

/// The range of a statement: inclusive UTC days, at most 366 of them.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatementQuery {
    /// The first day (YYYY-MM-DD, UTC).
    #[param(example = "2026-11-01")]
    pub from: NaiveDate,
    /// The last day, inclusive (YYYY-MM-DD, UTC): not before `from`, at most 365 days after.
    #[param(example = "2026-11-30")]
    pub to: NaiveDate,
}

/// Return a lead.
///
/// **Buyer key.** Within `return_window_days` of the sale, records a reversing transaction:
/// the buyer is refunded, the seller's payout and the exchange's margin are reversed.
#[utoipa::path(
    post,
    path = "/v1/returns",
    tag = "buyer",
    security(("bearer" = [])),
    request_body = ReturnRequest,
    responses(
        (status = 200, description = "Returned: the price is refunded.", body = ReturnReceipt),
        (status = 404, description = "`lead_not_found`: no such lead sold to this buyer.", body = ErrorBody),
        (status = 409, description = "`already_returned`.", body = ErrorBody),
        (status = 422, description = "`return_window_passed`, `returns_disabled`, or `validation_failed` for a bad body.", body = ErrorBody),
        AuthErrors, BodyErrors, Unavailable,
    )
)]
pub async fn create_return(
    req: HttpRequest,
    payload: web::Payload,
    exchange: web::Data<Exchange>,
) -> Result<HttpResponse, ApiError> {
    let buyer = authenticate(&req, &exchange)?.buyer()?;
    let value = read_json(&req, payload, exchange.config.body_limit_bytes).await?;
    let mut fields = Fields::new(value)?;
    let lead_id = fields.string("lead_id", true, 64);
    let reason = fields.string("reason", true, 200);
    fields.finish()?;
    let (Some(lead_id), Some(reason)) = (lead_id, reason) else {
        return Err(ApiError::internal(anyhow::anyhow!(
            "required fields passed the parse"
        )));
    };
    Ok(HttpResponse::Ok().json(exchange.return_lead(&buyer, &lead_id, &reason).await?))
}

/// The buyer's statement.
///
/// **Buyer key.** The entries of the account `buyer:<id>` in the range and their sum:
/// sales are negative (the buyer pays), returns positive.
#[utoipa::path(
    get,
    path = "/v1/buyers/me/statement",
    tag = "buyer",
    security(("bearer" = [])),
    params(StatementQuery),
    responses(
        (status = 200, description = "The statement.", body = Statement),
        (status = 400, description = "`malformed_query`: the query string cannot be read.", body = ErrorBody),
        (status = 422, description = "`validation_failed`: `from` or `to` missing, not a date, or out of range.", body = ErrorBody),
        AuthErrors, Unavailable,
    )
)]
pub async fn buyer_statement(
    req: HttpRequest,
    exchange: web::Data<Exchange>,
) -> Result<HttpResponse, ApiError> {
    let buyer = authenticate(&req, &exchange)?.buyer()?;
    let (from, to) = date_range(&req)?;
    Ok(HttpResponse::Ok().json(
        exchange
            .statement(buyer_account(&buyer.id), from, to)
            .await?,
    ))
}

/// The seller's statement.
///
/// **Seller key.** The entries of the account `seller:<id>` in the range and their sum:
/// payouts are positive, returns negative.
#[utoipa::path(
    get,
    path = "/v1/sellers/me/statement",
    tag = "seller",
    security(("bearer" = [])),
    params(StatementQuery),
    responses(
        (status = 200, description = "The statement.", body = Statement),
        (status = 400, description = "`malformed_query`: the query string cannot be read.", body = ErrorBody),
        (status = 422, description = "`validation_failed`: `from` or `to` missing, not a date, or out of range.", body = ErrorBody),
        AuthErrors, Unavailable,
    )
)]
pub async fn seller_statement(
    req: HttpRequest,
    exchange: web::Data<Exchange>,
) -> Result<HttpResponse, ApiError> {
    let seller = authenticate(&req, &exchange)?.seller()?;
    let (from, to) = date_range(&req)?;
    Ok(HttpResponse::Ok().json(
        exchange
            .statement(seller_account(&seller.id), from, to)
            .await?,
    ))
}

/// A date written exactly `YYYY-MM-DD`, as OpenAPI's `format: date` says: chrono alone also
/// takes `2026-1-5`, a leading space or a sign.
fn parse_date(text: &str) -> Option<NaiveDate> {
    let shape = text.len() == 10
        && text.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            _ => b.is_ascii_digit(),
        });
    shape
        .then(|| NaiveDate::parse_from_str(text, "%Y-%m-%d").ok())
        .flatten()
}

/// `from` and `to` (inclusive YYYY-MM-DD), both required, at most a year apart.
pub fn date_range(req: &HttpRequest) -> Result<(NaiveDate, NaiveDate), ApiError> {
    let query =
        web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string())
            .map_err(|_| {
                ApiError::new(
                    actix_web::http::StatusCode::BAD_REQUEST,
                    "malformed_query",
                    "the query string cannot be read",
                )
            })?;
    let mut errors = Vec::new();
    let mut date = |name: &str| match query.get(name) {
        None => {
            errors.push(FieldError::new(
                name,
                "required",
                "is required (YYYY-MM-DD)",
            ));
            None
        }
        Some(text) => match parse_date(text) {
            Some(d) => Some(d),
            None => {
                errors.push(FieldError::new(
                    name,
                    "invalid_format",
                    "must be a date as YYYY-MM-DD",
                ));
                None
            }
        },
    };
    let (from, to) = (date("from"), date("to"));
    match (from, to) {
        (Some(from), Some(to)) if from > to => errors.push(FieldError::new(
            "to",
            "out_of_range",
            "must not be before from",
        )),
        (Some(from), Some(to)) if (to - from).num_days() >= crate::exchange::STATEMENT_DAYS_MAX => {
            errors.push(FieldError::new(
                "to",
                "out_of_range",
                "a range covers at most 366 days",
            ))
        }
        (Some(from), Some(to)) => return Ok((from, to)),
        _ => {}
    }
    Err(ApiError::validation(
        "validation_failed",
        "the query is not valid",
        errors,
    ))
}
