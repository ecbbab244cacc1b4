//! Returns and statements: the buyer's and the seller's side of the books.

use chrono::{DateTime, Duration as ChronoDuration, NaiveDate, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::Exchange;
use crate::config::Buyer;
use crate::domain::{Money, SignedCents};
use crate::error::ApiError;
use crate::ledger::{Transaction, TransactionKind};
use crate::store::{NewReturn, StoreError};

/// One ledger entry of the account.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatementLine {
    #[schema(format = DateTime)]
    pub time: String,
    pub kind: TransactionKind,
    pub lead_id: String,
    /// Signed: a buyer's sale is negative, a seller's positive; a return the opposite.
    pub amount: SignedCents,
}

/// An account's ledger entries over a range of days, and their sum.
#[derive(Debug, Serialize, ToSchema)]
pub struct Statement {
    /// `buyer:<id>` or `seller:<id>`.
    #[schema(example = "buyer:summit-insurance")]
    pub account: String,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub currency: String,
    pub lines: Vec<StatementLine>,
    /// The sum of the lines: net after returns.
    pub total: SignedCents,
}

/// The answer to an accepted return.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReturnReceipt {
    pub lead_id: String,
    pub status: ReturnStatus,
    /// The price refunded to the buyer.
    pub refund: Money,
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReturnStatus {
    Returned,
}

/// Longest range one statement covers.
pub const STATEMENT_DAYS_MAX: i64 = 366;

/// `from` and `to` are inclusive UTC dates: `[from 00:00, to + 1 day 00:00)`.
pub fn day_range(from: NaiveDate, to: NaiveDate) -> (DateTime<Utc>, DateTime<Utc>) {
    let start = from.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
    let end = (to + ChronoDuration::days(1))
        .and_hms_opt(0, 0, 0)
        .unwrap_or_default()
        .and_utc();
    (start, end)
}

impl Exchange {
    pub async fn return_lead(
        &self,
        buyer: &Buyer,
        lead_id: &str,
        reason: &str,
    ) -> Result<ReturnReceipt, ApiError> {
        let window_days = self.config.return_window_days;
        if window_days == 0 {
            return Err(ApiError::validation(
                "returns_disabled",
                "this exchange does not accept returns",
                vec![],
            ));
        }
        let sale = self
            .store
            .get_sale(lead_id)
            .await?
            .filter(|s| s.buyer_id == buyer.id)
            .ok_or_else(|| {
                ApiError::not_found(
                    "lead_not_found",
                    "no lead with this id was sold to this buyer",
                )
            })?;
        let now = self.now();
        if now - sale.created_at > ChronoDuration::days(window_days as i64) {
            return Err(ApiError::validation(
                "return_window_passed",
                "the return window for this lead has passed",
                vec![],
            ));
        }
        let transaction = Transaction::reversal(&sale.transaction_id, lead_id, &sale.entries, now);
        let ret = NewReturn {
            lead_id: lead_id.to_string(),
            buyer_id: buyer.id.clone(),
            reason: reason.to_string(),
            transaction,
        };
        match self.store.record_return(&ret).await {
            Ok(()) => {
                crate::metrics::METRICS
                    .returns
                    .with_label_values(&[buyer.id.as_str()])
                    .inc();
                tracing::info!(buyer = %buyer.id, lead_id, refund = %sale.price, "lead returned");
                Ok(ReturnReceipt {
                    lead_id: lead_id.to_string(),
                    status: ReturnStatus::Returned,
                    refund: sale.price,
                })
            }
            Err(StoreError::Conflict(_)) => Err(ApiError::conflict(
                "already_returned",
                "this lead was returned already",
            )),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn statement(
        &self,
        account: String,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Statement, ApiError> {
        let (start, end) = day_range(from, to);
        let entries = self.store.account_entries(&account, start, end).await?;
        let total = SignedCents(entries.iter().map(|e| e.amount_cents).sum());
        let lines = entries
            .into_iter()
            .map(|e| StatementLine {
                time: super::ping::rfc3339(e.time),
                kind: e.kind,
                lead_id: e.lead_id,
                amount: SignedCents(e.amount_cents),
            })
            .collect();
        Ok(Statement {
            account,
            from,
            to,
            currency: self.config.currency.clone(),
            lines,
            total,
        })
    }
}
