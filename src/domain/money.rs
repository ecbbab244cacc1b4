//! Money: exact decimal amounts, two decimals on the wire, never floating point.

use std::fmt;

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::RefOr;

/// An amount of money in the exchange's currency. Always rendered with two decimals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Money(Decimal);

/// Why a price sent by a seller, a buyer or a config file is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("is not a number")]
    NotANumber,
    #[error("has more than 2 decimals")]
    TooManyDecimals,
    #[error("is negative")]
    Negative,
    #[error("is too large")]
    TooLarge,
    #[error("must be plain digits with at most 2 decimals, like \"5.00\"")]
    NotPlain,
}

/// The largest amount the exchange handles: ten billion minus a cent keeps every sum in i64 cents.
const MAX_CENTS: i64 = 999_999_999_999;

impl Money {
    pub const ZERO: Money = Money(Decimal::ZERO);

    /// Parses a price written as text ("14.25"): at most 2 decimals, not negative.
    pub fn parse(text: &str) -> Result<Money, MoneyError> {
        let text = text.trim();
        let valid_chars = !text.is_empty()
            && text
                .chars()
                .all(|c| c.is_ascii_digit() || c == '.' || c == '-' || c == '+');
        if !valid_chars {
            return Err(MoneyError::NotANumber);
        }
        let value: Decimal = text.parse().map_err(|_| MoneyError::NotANumber)?;
        // Decimals as written count: "1.230" is a price with three decimals, not 1.23.
        if text
            .split_once('.')
            .is_some_and(|(_, decimals)| decimals.len() > 2)
        {
            return Err(MoneyError::TooManyDecimals);
        }
        Money::from_decimal(value)
    }

    /// Parses a price that arrived as JSON: a number or a string.
    pub fn from_json(value: &serde_json::Value) -> Result<Money, MoneyError> {
        match value {
            // serde_json prints the shortest text that round-trips, so "14.25" stays "14.25".
            serde_json::Value::Number(n) => Money::parse(&n.to_string()),
            serde_json::Value::String(s) => Money::parse(s),
            _ => Err(MoneyError::NotANumber),
        }
    }

    /// Parses a price a client of the API sent: a JSON number, or a string written as
    /// [`INPUT_PATTERN`] says (no sign, space, exponent or third decimal, even a zero), so
    /// that what the API accepts is exactly what its OpenAPI document describes.
    pub fn from_request_json(value: &serde_json::Value) -> Result<Money, MoneyError> {
        match value {
            serde_json::Value::String(text) if !is_plain_amount(text) => Err(MoneyError::NotPlain),
            other => Money::from_json(other),
        }
    }

    pub fn from_decimal(value: Decimal) -> Result<Money, MoneyError> {
        let value = value.normalize();
        if value.scale() > 2 {
            return Err(MoneyError::TooManyDecimals);
        }
        if value.is_sign_negative() && !value.is_zero() {
            return Err(MoneyError::Negative);
        }
        let money = Money(value);
        if money.cents_checked().is_none() {
            return Err(MoneyError::TooLarge);
        }
        Ok(money)
    }

    pub fn from_cents(cents: i64) -> Money {
        Money(Decimal::new(cents, 2))
    }

    fn cents_checked(&self) -> Option<i64> {
        let cents = (self.0 * Decimal::ONE_HUNDRED).trunc();
        let cents: i64 = cents.try_into().ok()?;
        (cents.abs() <= MAX_CENTS).then_some(cents)
    }

    /// The amount in cents. Every `Money` is built through a check that keeps it in range.
    pub fn cents(&self) -> i64 {
        self.cents_checked().unwrap_or(MAX_CENTS)
    }

    pub fn decimal(&self) -> Decimal {
        self.0
    }

    /// `self × share`, rounded down to the cent: the seller never gets a fraction of a cent
    /// more than its share, so the exchange never pays out more than it charges.
    pub fn share_floor(&self, share: Decimal) -> Money {
        let raw = self.0 * share;
        Money(
            raw.round_dp_with_strategy(2, RoundingStrategy::ToZero)
                .normalize(),
        )
    }

    pub fn checked_sub(&self, other: Money) -> Option<Money> {
        let value = self.0 - other.0;
        (!value.is_sign_negative() || value.is_zero()).then_some(Money(value))
    }

    /// The amount as it goes on the wire: a string with exactly two decimals.
    pub fn to_wire(&self) -> String {
        let mut value = self.0;
        value.rescale(2);
        value.to_string()
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_wire())
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_wire())
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        Money::from_json(&value).map_err(|e| serde::de::Error::custom(format!("amount {e}")))
    }
}

/// A signed amount in cents, as ledger entries carry it. Rendered with two decimals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct SignedCents(pub i64);

impl SignedCents {
    pub fn to_wire(self) -> String {
        Decimal::new(self.0, 2).to_string()
    }
}

impl fmt::Display for SignedCents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_wire())
    }
}

impl Serialize for SignedCents {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_wire())
    }
}

/// Whether `text` matches [`INPUT_PATTERN`]: 1 to 10 digits, then optionally a dot and 1 or 2.
fn is_plain_amount(text: &str) -> bool {
    let digits = |part: &str, len_max: usize| {
        (1..=len_max).contains(&part.len()) && part.bytes().all(|b| b.is_ascii_digit())
    };
    match text.split_once('.') {
        Some((whole, cents)) => digits(whole, 10) && digits(cents, 2),
        None => digits(text, 10),
    }
}

/// The wire form of an amount: two decimals, never a JSON number.
pub const WIRE_PATTERN: &str = r"^[0-9]+\.[0-9]{2}$";
/// The wire form of a signed amount (ledger entries, statement totals).
pub const SIGNED_WIRE_PATTERN: &str = r"^-?[0-9]+\.[0-9]{2}$";
/// A price a client sends as text: up to ten whole digits and at most two decimals.
pub const INPUT_PATTERN: &str = r"^[0-9]{1,10}(\.[0-9]{1,2})?$";

impl utoipa::PartialSchema for Money {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(WIRE_PATTERN))
            .description(Some(
                "An amount of money: a string with exactly two decimals.",
            ))
            .examples(["12.50"])
            .into()
    }
}

impl utoipa::ToSchema for Money {}

impl utoipa::PartialSchema for SignedCents {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(SIGNED_WIRE_PATTERN))
            .description(Some(
                "A signed amount of money (negative is a debit): a string with exactly two decimals.",
            ))
            .examples(["-12.50"])
            .into()
    }
}

impl utoipa::ToSchema for SignedCents {
    fn name() -> std::borrow::Cow<'static, str> {
        "SignedAmount".into()
    }
}

/// The schema of a price a client sends (a seller's `floor`): a string or a JSON number,
/// not negative, at most two decimals; `null` is the same as leaving it out.
pub fn input_schema() -> Schema {
    let text = ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(INPUT_PATTERN))
        .examples(["5.00"]);
    let number = ObjectBuilder::new()
        .schema_type(Type::Number)
        .minimum(Some(0))
        .maximum(Some(9_999_999_999.99))
        .description(Some("at most two decimals"))
        .examples([5.0]);
    OneOfBuilder::new()
        .item(text)
        .item(number)
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .description(Some(
            "A price: a string (\"5.00\") or a JSON number (5), not negative, at most two decimals.",
        ))
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn parses_numbers_and_strings_with_two_decimals() {
        assert_eq!(Money::from_json(&json!(14.25)).unwrap().to_wire(), "14.25");
        assert_eq!(
            Money::from_json(&json!("14.25")).unwrap().to_wire(),
            "14.25"
        );
        assert_eq!(Money::from_json(&json!(12)).unwrap().to_wire(), "12.00");
        assert_eq!(Money::from_json(&json!("7.5")).unwrap().to_wire(), "7.50");
        assert_eq!(Money::from_json(&json!("1.20")).unwrap().to_wire(), "1.20");
    }

    #[test]
    fn rejects_what_is_not_a_clean_price() {
        assert_eq!(Money::from_json(&json!("NaN")), Err(MoneyError::NotANumber));
        assert_eq!(Money::from_json(&json!("abc")), Err(MoneyError::NotANumber));
        assert_eq!(Money::from_json(&json!("")), Err(MoneyError::NotANumber));
        assert_eq!(Money::from_json(&json!("1e3")), Err(MoneyError::NotANumber));
        assert_eq!(Money::from_json(&json!(true)), Err(MoneyError::NotANumber));
        assert_eq!(Money::from_json(&json!(null)), Err(MoneyError::NotANumber));
        assert_eq!(Money::from_json(&json!(-1)), Err(MoneyError::Negative));
        assert_eq!(Money::from_json(&json!("-0.01")), Err(MoneyError::Negative));
        assert_eq!(
            Money::from_json(&json!(1.005)),
            Err(MoneyError::TooManyDecimals)
        );
        assert_eq!(
            Money::from_json(&json!("1.005")),
            Err(MoneyError::TooManyDecimals)
        );
        assert_eq!(
            Money::from_json(&json!("1.230")),
            Err(MoneyError::TooManyDecimals),
            "decimals as written count"
        );
        assert_eq!(
            Money::from_json(&json!("99999999999999")),
            Err(MoneyError::TooLarge)
        );
    }

    #[test]
    fn a_client_writes_a_price_as_plain_digits_or_a_number() {
        for ok in ["5", "5.0", "5.00", "0005.5", "9999999999.99", "0"] {
            assert!(Money::from_request_json(&json!(ok)).is_ok(), "{ok}");
        }
        for bad in [
            "5.000",
            " 5",
            "5 ",
            "+5",
            "-0",
            "5.",
            ".5",
            "1e2",
            "5\n",
            "",
            "99999999999",
        ] {
            assert_eq!(
                Money::from_request_json(&json!(bad)),
                Err(MoneyError::NotPlain),
                "{bad:?}"
            );
        }
        assert_eq!(
            Money::from_request_json(&json!(1e2)).unwrap().to_wire(),
            "100.00"
        );
        assert_eq!(
            Money::from_request_json(&json!(-1)),
            Err(MoneyError::Negative)
        );
    }

    #[test]
    fn share_rounds_down_to_the_cent() {
        let price = Money::parse("14.99").unwrap();
        let share: Decimal = "0.80".parse().unwrap();
        // 14.99 × 0.80 = 11.992
        assert_eq!(price.share_floor(share).to_wire(), "11.99");
        let price = Money::parse("0.01").unwrap();
        assert_eq!(price.share_floor(share).to_wire(), "0.00");
    }

    proptest! {
        #[test]
        fn payout_never_exceeds_price_and_is_whole_cents(cents in 0i64..100_000_000, share_bp in 0u32..=10_000) {
            let price = Money::from_cents(cents);
            let share = Decimal::new(share_bp as i64, 4);
            let payout = price.share_floor(share);
            prop_assert!(payout <= price);
            prop_assert!(payout.decimal().scale() <= 2);
            let margin = price.checked_sub(payout).expect("margin is never negative");
            prop_assert_eq!(margin.cents() + payout.cents(), price.cents());
            // Rounded down: less than one cent below the exact product.
            let exact = price.decimal() * share;
            prop_assert!(exact - payout.decimal() < Decimal::new(1, 2));
            prop_assert!(exact >= payout.decimal());
        }

        #[test]
        fn wire_form_round_trips(cents in 0i64..MAX_CENTS) {
            let money = Money::from_cents(cents);
            let wire = money.to_wire();
            prop_assert_eq!(wire.split('.').nth(1).map(str::len), Some(2));
            prop_assert_eq!(Money::parse(&wire).unwrap(), money);
        }
    }
}
