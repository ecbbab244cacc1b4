//! The buyer protocol on the wire: what we send and how we read what comes back.

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::domain::{Money, MoneyError};

#[derive(Serialize)]
pub struct BidRequest<'a> {
    pub ping_id: &'a str,
    pub vertical: &'a str,
    pub floor: Money,
    pub tmax_ms: u64,
    /// The non-PII fields, serialised once per auction.
    pub lead: &'a RawValue,
}

#[derive(Serialize)]
pub struct PostRequest<'a> {
    pub ping_id: &'a str,
    pub bid_id: Option<&'a str>,
    pub price: Money,
    pub vertical: &'a str,
    pub lead: &'a serde_json::Map<String, Value>,
}

/// A buyer's answer to a bid request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BidAnswer {
    Bid {
        price: Money,
        bid_id: Option<String>,
    },
    NoBid,
}

/// A buyer's answer to a post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PostAnswer {
    Accepted { buyer_lead_id: Option<String> },
    Rejected { reason: String },
}

const TOKEN_LEN_MAX: usize = 128;

/// Reads a bid response body. An `Err` is the reason it counts as the buyer's error.
pub fn parse_bid(status: u16, body: &[u8], max_bid: Option<Money>) -> Result<BidAnswer, String> {
    match status {
        204 => return Ok(BidAnswer::NoBid),
        200 => {}
        other => return Err(format!("status {other}")),
    }
    let value: Value = serde_json::from_slice(body).map_err(|_| "malformed JSON".to_string())?;
    let object = value.as_object().ok_or("response is not a JSON object")?;
    let bid = match object.get("bid") {
        None => return Err("response has no bid".into()),
        Some(Value::Null) => return Ok(BidAnswer::NoBid),
        Some(bid) => bid,
    };
    let price = Money::from_json(bid).map_err(|e| match e {
        MoneyError::NotANumber => "bid is not a number".to_string(),
        other => format!("bid {other}"),
    })?;
    if max_bid.is_some_and(|max| price > max) {
        return Err("bid is above max_bid".into());
    }
    Ok(BidAnswer::Bid {
        price,
        bid_id: token(object.get("bid_id"))?,
    })
}

/// Reads a post response. Only a 2xx with `"accepted": true` is an acceptance.
pub fn parse_post(status: u16, body: &[u8]) -> Result<PostAnswer, String> {
    if !(200..300).contains(&status) {
        return Err(format!("status {status}"));
    }
    let value: Value = serde_json::from_slice(body).map_err(|_| "malformed JSON".to_string())?;
    let object = value.as_object().ok_or("response is not a JSON object")?;
    match object.get("accepted") {
        Some(Value::Bool(true)) => Ok(PostAnswer::Accepted {
            buyer_lead_id: token(object.get("buyer_lead_id"))?,
        }),
        Some(Value::Bool(false)) => Ok(PostAnswer::Rejected {
            reason: token(object.get("reason"))?.unwrap_or_else(|| "rejected".into()),
        }),
        _ => Err("response has no accepted flag".into()),
    }
}

/// A buyer's own token (bid id, lead id, reason): a short string, or a number written as one.
fn token(value: Option<&Value>) -> Result<Option<String>, String> {
    let text = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(_) => return Err("token is not a string".into()),
    };
    if text.len() > TOKEN_LEN_MAX || text.chars().any(char::is_control) {
        return Err("token is too long or has control characters".into());
    }
    Ok(Some(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn max() -> Option<Money> {
        Some(Money::parse("200.00").unwrap())
    }

    #[test]
    fn reads_bids_and_no_bids() {
        let bid = |body: &str| parse_bid(200, body.as_bytes(), max());
        assert_eq!(
            bid(r#"{"bid": 14.25, "bid_id": "x1"}"#),
            Ok(BidAnswer::Bid {
                price: Money::parse("14.25").unwrap(),
                bid_id: Some("x1".into())
            })
        );
        assert!(matches!(
            bid(r#"{"bid": "14.25"}"#),
            Ok(BidAnswer::Bid { .. })
        ));
        assert_eq!(bid(r#"{"bid": null}"#), Ok(BidAnswer::NoBid));
        assert_eq!(parse_bid(204, b"", max()), Ok(BidAnswer::NoBid));
    }

    #[test]
    fn everything_else_is_an_error() {
        let bid = |body: &str| parse_bid(200, body.as_bytes(), max());
        assert!(bid(r#"{"bid": "NaN"}"#).is_err());
        assert!(bid(r#"{"bid": -1}"#).is_err());
        assert!(bid(r#"{"bid": "1.005"}"#).is_err());
        assert!(bid(r#"{"bid": 200.01}"#).is_err());
        assert!(bid("<html>oops</html>").is_err());
        assert!(bid("[]").is_err());
        assert!(bid("{}").is_err());
        assert_eq!(
            parse_bid(500, b"{\"bid\": 5}", max()),
            Err("status 500".into())
        );
    }

    #[test]
    fn only_a_2xx_acceptance_is_a_sale() {
        assert!(
            matches!(parse_post(200, br#"{"accepted": true, "buyer_lead_id": 7}"#), Ok(PostAnswer::Accepted { buyer_lead_id: Some(id) }) if id == "7")
        );
        assert!(matches!(
            parse_post(200, br#"{"accepted": false, "reason": "duplicate"}"#),
            Ok(PostAnswer::Rejected { .. })
        ));
        assert!(parse_post(500, br#"{"accepted": true}"#).is_err());
        assert!(parse_post(200, b"yes").is_err());
    }
}
