//! The finance API: `GET /v1/reports/revenue`, `/v1/reports/ledger`, `/v1/reports/auctions`.
//! Finance keys only.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::NaiveDate;
use chrono_tz::Tz;
use futures_util::StreamExt;

use utoipa::IntoParams;

use super::authenticate;
use super::responses::{AuthErrors, Unavailable};
use crate::domain::FieldError;
use crate::error::ApiError;
use crate::error::ErrorBody;
use crate::exchange::Exchange;
use crate::reports::{auctions, Format, Period, RevenueGroup, REPORT_DAYS_MAX};

/// The range and options every report takes.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReportRange {
    /// The first day (YYYY-MM-DD), in `tz`.
    #[param(example = "2026-11-01")]
    pub from: NaiveDate,
    /// The last day, inclusive (YYYY-MM-DD), in `tz`; at most 366 days after `from`.
    #[param(example = "2026-11-30")]
    pub to: NaiveDate,
    /// IANA time zone for day boundaries (default `UTC`).
    #[param(example = "America/New_York")]
    pub tz: Option<String>,
    /// `json` (default) or `csv` (RFC 4180 with a header row).
    #[param(example = "json")]
    pub format: Option<String>,
}

/// `group_by` of the revenue report.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RevenueGrouping {
    /// `day`, `buyer`, `seller` or `vertical`.
    #[param(example = "day")]
    pub group_by: String,
}

/// `group_by` of the auction statistics.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuctionGrouping {
    /// `buyer`, `seller` or `vertical`.
    #[param(example = "buyer")]
    pub group_by: String,
}

/// Revenue by day, buyer, seller or vertical.
///
/// **Finance key.** Per group: leads sold, gross, payouts, margin, returns, returned amount
/// and net margin, with a totals row; computed from the ledger, to the cent.
#[utoipa::path(
    get,
    path = "/v1/reports/revenue",
    tag = "finance",
    security(("bearer" = [])),
    params(ReportRange, RevenueGrouping),
    responses(
        (status = 200, description = "The report, as JSON or CSV.", content((Object = "application/json"), (String = "text/csv"))),
        (status = 400, description = "`malformed_query`: the query string cannot be read.", body = ErrorBody),
        (status = 422, description = "`validation_failed`: a parameter is missing, malformed or out of range (each is named).", body = ErrorBody),
        AuthErrors, Unavailable,
    )
)]
pub async fn revenue(
    req: HttpRequest,
    exchange: web::Data<Exchange>,
) -> Result<HttpResponse, ApiError> {
    authenticate(&req, &exchange)?.finance()?;
    let mut query = ReportQuery::parse(&req)?;
    let period = query.period();
    let group = query.choice(
        "group_by",
        None,
        RevenueGroup::parse,
        "day, buyer, seller or vertical",
    );
    let format = query.format();
    query.finish()?;
    let (Some(period), Some(group), Some(format)) = (period, group, format) else {
        return Err(ApiError::internal(anyhow::anyhow!(
            "the query passed the parse"
        )));
    };
    let report = exchange.revenue_report(period, group).await?;
    let body = report
        .render(format)
        .map_err(|e| ApiError::internal(e.into()))?;
    Ok(document(format, &format!("revenue-by-{}", group.as_str()), &period).body(body))
}

/// Auction statistics by buyer, seller or vertical.
///
/// **Finance key.** Pings, bids, bid rate, average bid, wins, posts accepted and rejected,
/// timeouts and errors.
#[utoipa::path(
    get,
    path = "/v1/reports/auctions",
    tag = "finance",
    security(("bearer" = [])),
    params(ReportRange, AuctionGrouping),
    responses(
        (status = 200, description = "The statistics, as JSON or CSV.", content((Object = "application/json"), (String = "text/csv"))),
        (status = 400, description = "`malformed_query`: the query string cannot be read.", body = ErrorBody),
        (status = 422, description = "`validation_failed`: a parameter is missing, malformed or out of range (each is named).", body = ErrorBody),
        AuthErrors, Unavailable,
    )
)]
pub async fn auctions(
    req: HttpRequest,
    exchange: web::Data<Exchange>,
) -> Result<HttpResponse, ApiError> {
    authenticate(&req, &exchange)?.finance()?;
    let mut query = ReportQuery::parse(&req)?;
    let period = query.period();
    let dimension = query.choice(
        "group_by",
        Some("buyer"),
        auctions::parse_dimension,
        "buyer, seller or vertical",
    );
    let format = query.format();
    query.finish()?;
    let (Some(period), Some(dimension), Some(format)) = (period, dimension, format) else {
        return Err(ApiError::internal(anyhow::anyhow!(
            "the query passed the parse"
        )));
    };
    let report = exchange.auction_report(period, dimension).await?;
    let body = report
        .render(format)
        .map_err(|e| ApiError::internal(e.into()))?;
    let name = format!("auctions-by-{}", report.group_by);
    Ok(document(format, &name, &period).body(body))
}

/// The raw ledger: every entry in the range, streamed.
///
/// **Finance key.** Transaction id, time, kind, account, signed amount and lead id.
#[utoipa::path(
    get,
    path = "/v1/reports/ledger",
    tag = "finance",
    security(("bearer" = [])),
    params(ReportRange),
    responses(
        (status = 200, description = "The entries, as JSON or CSV.", content((Object = "application/json"), (String = "text/csv"))),
        (status = 400, description = "`malformed_query`: the query string cannot be read.", body = ErrorBody),
        (status = 422, description = "`validation_failed`: a parameter is missing, malformed or out of range (each is named).", body = ErrorBody),
        AuthErrors, Unavailable,
    )
)]
pub async fn ledger(
    req: HttpRequest,
    exchange: web::Data<Exchange>,
) -> Result<HttpResponse, ApiError> {
    authenticate(&req, &exchange)?.finance()?;
    let mut query = ReportQuery::parse(&req)?;
    let period = query.period();
    let format = query.format();
    query.finish()?;
    let (Some(period), Some(format)) = (period, format) else {
        return Err(ApiError::internal(anyhow::anyhow!(
            "the query passed the parse"
        )));
    };
    let stream = exchange.ledger_export(period, format).await?;
    let body = stream.map(|chunk| {
        chunk.map_err(|e| {
            // The status is sent already: the error ends the body early, and is logged here.
            tracing::error!(error = format!("{e:#}"), "the ledger export stopped");
            actix_web::error::ErrorInternalServerError("ledger export failed")
        })
    });
    Ok(document(format, "ledger", &period).streaming(body))
}

/// A 200 response of this format; CSV comes as a download named after the report and period.
fn document(format: Format, name: &str, period: &Period) -> actix_web::HttpResponseBuilder {
    let mut response = HttpResponse::Ok();
    response.content_type(format.content_type());
    if format == Format::Csv {
        response.insert_header((
            "Content-Disposition",
            format!(
                "attachment; filename=\"{name}-{}-{}.csv\"",
                period.from, period.to
            ),
        ));
    }
    response
}

/// The query string of a report, every problem collected for one 422.
struct ReportQuery {
    params: HashMap<String, String>,
    errors: Vec<FieldError>,
}

impl ReportQuery {
    fn parse(req: &HttpRequest) -> Result<ReportQuery, ApiError> {
        let params = web::Query::<HashMap<String, String>>::from_query(req.query_string())
            .map_err(|_| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "malformed_query",
                    "the query string cannot be read",
                )
            })?
            .into_inner();
        Ok(ReportQuery {
            params,
            errors: Vec::new(),
        })
    }

    fn error(&mut self, field: &str, code: &str, message: &str) {
        self.errors.push(FieldError::new(field, code, message));
    }

    fn date(&mut self, name: &str) -> Option<NaiveDate> {
        match self.params.get(name).cloned() {
            None => {
                self.error(name, "required", "is required (YYYY-MM-DD)");
                None
            }
            Some(text) => NaiveDate::parse_from_str(&text, "%Y-%m-%d")
                .map_err(|_| self.error(name, "invalid_format", "must be a date as YYYY-MM-DD"))
                .ok(),
        }
    }

    /// `from` and `to` (inclusive dates, at most a year apart) and `tz` (IANA, default UTC).
    fn period(&mut self) -> Option<Period> {
        let (from, to) = (self.date("from"), self.date("to"));
        let tz = match self.params.get("tz").cloned() {
            None => Some(Tz::UTC),
            Some(name) => name.parse::<Tz>().ok().or_else(|| {
                self.error(
                    "tz",
                    "invalid_value",
                    "must be an IANA time zone name, such as America/New_York",
                );
                None
            }),
        };
        let (from, to, tz) = (from?, to?, tz?);
        if from > to {
            self.error("to", "out_of_range", "must not be before from");
            return None;
        }
        if (to - from).num_days() >= REPORT_DAYS_MAX {
            self.error("to", "out_of_range", "a range covers at most 366 days");
            return None;
        }
        Some(Period { from, to, tz })
    }

    fn choice<T>(
        &mut self,
        name: &str,
        default: Option<&str>,
        parse: fn(&str) -> Option<T>,
        allowed: &str,
    ) -> Option<T> {
        let Some(text) = self.params.get(name).cloned().or(default.map(String::from)) else {
            self.error(name, "required", &format!("is required: {allowed}"));
            return None;
        };
        let value = parse(&text);
        if value.is_none() {
            self.error(name, "invalid_value", &format!("must be one of: {allowed}"));
        }
        value
    }

    fn format(&mut self) -> Option<Format> {
        self.choice("format", Some("json"), Format::parse, "json, csv")
    }

    fn finish(self) -> Result<(), ApiError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::validation(
                "validation_failed",
                "the query is not valid",
                self.errors,
            ))
        }
    }
}
