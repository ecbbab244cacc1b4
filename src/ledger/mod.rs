//! The double-entry ledger: the only way money moves. Builds balanced transactions; the
//! store writes them and the database checks the balance a second time.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::domain::ids::new_transaction_id;
use crate::domain::Money;

pub const EXCHANGE_REVENUE: &str = "exchange:revenue";

pub fn buyer_account(id: &str) -> String {
    format!("buyer:{id}")
}

pub fn seller_account(id: &str) -> String {
    format!("seller:{id}")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TransactionKind {
    Sale,
    Return,
}

impl TransactionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TransactionKind::Sale => "sale",
            TransactionKind::Return => "return",
        }
    }

    pub fn parse(text: &str) -> Option<TransactionKind> {
        match text {
            "sale" => Some(TransactionKind::Sale),
            "return" => Some(TransactionKind::Return),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub account: String,
    /// Signed cents: negative is a debit to the account.
    pub amount_cents: i64,
}

#[derive(Debug, Clone)]
pub struct Transaction {
    pub id: String,
    pub kind: TransactionKind,
    pub lead_id: String,
    /// For a return: the sale transaction it reverses.
    pub reverses: Option<String>,
    pub entries: Vec<Entry>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("ledger transaction {id} does not balance: entries sum to {sum_cents} cents")]
pub struct Unbalanced {
    pub id: String,
    pub sum_cents: i64,
}

/// The money of one sale: price charged, payout owed, margin kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SaleAmounts {
    pub price: Money,
    pub payout: Money,
    pub margin: Money,
}

impl SaleAmounts {
    /// Payout rounds down to the cent, so the margin is never negative.
    pub fn new(price: Money, payout_share: rust_decimal::Decimal) -> SaleAmounts {
        let payout = price.share_floor(payout_share);
        let margin = price.checked_sub(payout).unwrap_or(Money::ZERO);
        SaleAmounts {
            price,
            payout,
            margin,
        }
    }
}

impl Transaction {
    /// `buyer:<id>` −price, `seller:<id>` +payout, `exchange:revenue` +margin.
    pub fn sale(
        lead_id: &str,
        buyer_id: &str,
        seller_id: &str,
        amounts: SaleAmounts,
        at: DateTime<Utc>,
    ) -> Transaction {
        Transaction {
            id: new_transaction_id(),
            kind: TransactionKind::Sale,
            lead_id: lead_id.to_string(),
            reverses: None,
            entries: vec![
                Entry {
                    account: buyer_account(buyer_id),
                    amount_cents: -amounts.price.cents(),
                },
                Entry {
                    account: seller_account(seller_id),
                    amount_cents: amounts.payout.cents(),
                },
                Entry {
                    account: EXCHANGE_REVENUE.to_string(),
                    amount_cents: amounts.margin.cents(),
                },
            ],
            created_at: at,
        }
    }

    /// The exact negation of a sale's entries, referencing it.
    pub fn reversal(
        sale_id: &str,
        lead_id: &str,
        sale_entries: &[Entry],
        at: DateTime<Utc>,
    ) -> Transaction {
        Transaction {
            id: new_transaction_id(),
            kind: TransactionKind::Return,
            lead_id: lead_id.to_string(),
            reverses: Some(sale_id.to_string()),
            entries: sale_entries
                .iter()
                .map(|e| Entry {
                    account: e.account.clone(),
                    amount_cents: -e.amount_cents,
                })
                .collect(),
            created_at: at,
        }
    }

    /// The check in Rust, made before every commit; the database repeats it.
    pub fn check_balanced(&self) -> Result<(), Unbalanced> {
        let sum: i64 = self.entries.iter().map(|e| e.amount_cents).sum();
        if sum == 0 && self.entries.len() >= 2 {
            Ok(())
        } else {
            Err(Unbalanced {
                id: self.id.clone(),
                sum_cents: sum,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn sales_and_their_reversals_balance(cents in 0i64..10_000_000, share_bp in 0i64..=10_000) {
            let amounts = SaleAmounts::new(Money::from_cents(cents), rust_decimal::Decimal::new(share_bp, 4));
            let sale = Transaction::sale("lead_1", "b", "s", amounts, Utc::now());
            prop_assert!(sale.check_balanced().is_ok());
            prop_assert!(amounts.margin.cents() >= 0);
            let reversal = Transaction::reversal(&sale.id, "lead_1", &sale.entries, Utc::now());
            prop_assert!(reversal.check_balanced().is_ok());
            for (a, b) in sale.entries.iter().zip(&reversal.entries) {
                prop_assert_eq!(a.amount_cents, -b.amount_cents);
                prop_assert_eq!(&a.account, &b.account);
            }
        }
    }

    #[test]
    fn an_unbalanced_transaction_is_refused() {
        let mut sale = Transaction::sale(
            "lead_1",
            "b",
            "s",
            SaleAmounts::new(Money::from_cents(1000), rust_decimal::Decimal::new(8, 1)),
            Utc::now(),
        );
        sale.entries[2].amount_cents += 1;
        assert_eq!(sale.check_balanced().unwrap_err().sum_cents, 1);
    }
}
