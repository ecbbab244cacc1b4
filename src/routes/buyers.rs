//! The buyer's API (returns, statement) and the seller's statement.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::NaiveDate;

use super::authenticate;
use super::body::{read_json, Fields};
use crate::domain::FieldError;
use crate::error::ApiError;
use crate::exchange::Exchange;
use crate::ledger::{buyer_account, seller_account};

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
        Some(text) => match NaiveDate::parse_from_str(text, "%Y-%m-%d") {
            Ok(d) => Some(d),
            Err(_) => {
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
