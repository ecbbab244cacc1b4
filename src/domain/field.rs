//! One field of a vertical's lead schema: its type, and how a value of it is checked and normalised.

use chrono::NaiveDate;
use regex::Regex;
use rust_decimal::Decimal;
use serde_json::Value;
use validator::ValidateEmail;

#[derive(Debug, Clone)]
pub enum FieldType {
    String {
        max_len: Option<usize>,
        pattern: Option<Regex>,
    },
    Integer {
        min: Option<i64>,
        max: Option<i64>,
    },
    Decimal {
        min: Option<Decimal>,
        max: Option<Decimal>,
    },
    Boolean,
    Enum {
        values: Vec<String>,
    },
    Date,
    Zip,
    UsState,
    Email,
    Phone,
}

impl FieldType {
    pub fn name(&self) -> &'static str {
        match self {
            FieldType::String { .. } => "string",
            FieldType::Integer { .. } => "integer",
            FieldType::Decimal { .. } => "decimal",
            FieldType::Boolean => "boolean",
            FieldType::Enum { .. } => "enum",
            FieldType::Date => "date",
            FieldType::Zip => "zip",
            FieldType::UsState => "us_state",
            FieldType::Email => "email",
            FieldType::Phone => "phone",
        }
    }

    /// Types whose values are ordered, so `min`/`max` filters make sense on them.
    pub fn is_numeric(&self) -> bool {
        matches!(self, FieldType::Integer { .. } | FieldType::Decimal { .. })
    }
}

#[derive(Debug, Clone)]
pub struct FieldSpec {
    pub name: String,
    pub ty: FieldType,
    pub required: bool,
    pub pii: bool,
}

/// Why one value was refused. The message describes the rule, never the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueError {
    pub code: &'static str,
    pub message: String,
}

fn invalid(code: &'static str, message: impl Into<String>) -> ValueError {
    ValueError {
        code,
        message: message.into(),
    }
}

/// USPS codes: the 50 states, DC, and the territories that lead forms carry.
const US_STATES: &[&str] = &[
    "AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "FL", "GA", "HI", "ID", "IL", "IN", "IA", "KS",
    "KY", "LA", "ME", "MD", "MA", "MI", "MN", "MS", "MO", "MT", "NE", "NV", "NH", "NJ", "NM", "NY",
    "NC", "ND", "OH", "OK", "OR", "PA", "RI", "SC", "SD", "TN", "TX", "UT", "VT", "VA", "WA", "WV",
    "WI", "WY", "DC", "PR", "VI", "GU", "AS", "MP",
];

/// Longest text value accepted in any field, whatever the schema says.
const STRING_LEN_MAX: usize = 1024;

impl FieldSpec {
    /// Checks one value and returns its normalised form (phones in E.164, states upper case).
    pub fn normalise(&self, value: &Value) -> Result<Value, ValueError> {
        match &self.ty {
            FieldType::String { max_len, pattern } => {
                let text = as_text(value)?;
                let len = text.chars().count();
                if len > max_len.unwrap_or(STRING_LEN_MAX).min(STRING_LEN_MAX) {
                    return Err(invalid(
                        "too_long",
                        format!(
                            "must be at most {} characters",
                            max_len.unwrap_or(STRING_LEN_MAX)
                        ),
                    ));
                }
                if let Some(pattern) = pattern {
                    if !pattern.is_match(text) {
                        return Err(invalid(
                            "invalid_format",
                            "does not match the field's pattern",
                        ));
                    }
                }
                Ok(Value::String(text.to_string()))
            }
            FieldType::Integer { min, max } => {
                let number = match value {
                    Value::Number(n) => n.as_i64(),
                    Value::String(s) => s.trim().parse::<i64>().ok(),
                    _ => None,
                }
                .ok_or_else(|| invalid("invalid_type", "must be a whole number"))?;
                check_range(number, *min, *max)?;
                Ok(Value::from(number))
            }
            FieldType::Decimal { min, max } => {
                let number = match value {
                    Value::Number(n) => n.to_string().parse::<Decimal>().ok(),
                    Value::String(s) if !s.contains(['e', 'E']) => s.trim().parse::<Decimal>().ok(),
                    _ => None,
                }
                .ok_or_else(|| invalid("invalid_type", "must be a decimal number"))?;
                check_range(number, *min, *max)?;
                Ok(Value::String(number.normalize().to_string()))
            }
            FieldType::Boolean => match value {
                Value::Bool(b) => Ok(Value::Bool(*b)),
                Value::String(s) if s == "true" => Ok(Value::Bool(true)),
                Value::String(s) if s == "false" => Ok(Value::Bool(false)),
                _ => Err(invalid("invalid_type", "must be true or false")),
            },
            FieldType::Enum { values } => {
                let text = as_text(value)?;
                if values.iter().any(|v| v == text) {
                    Ok(Value::String(text.to_string()))
                } else {
                    Err(invalid(
                        "not_allowed",
                        format!("must be one of: {}", values.join(", ")),
                    ))
                }
            }
            FieldType::Date => {
                let text = as_text(value)?;
                let valid = text.len() == 10 && NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok();
                if valid {
                    Ok(Value::String(text.to_string()))
                } else {
                    Err(invalid("invalid_format", "must be a date as YYYY-MM-DD"))
                }
            }
            FieldType::Zip => {
                let text = as_text(value)?;
                if text.len() == 5 && text.bytes().all(|b| b.is_ascii_digit()) {
                    Ok(Value::String(text.to_string()))
                } else {
                    Err(invalid("invalid_format", "must be a 5-digit ZIP code"))
                }
            }
            FieldType::UsState => {
                let code = as_text(value)?.trim().to_ascii_uppercase();
                if US_STATES.contains(&code.as_str()) {
                    Ok(Value::String(code))
                } else {
                    Err(invalid(
                        "invalid_format",
                        "must be a two-letter USPS state code",
                    ))
                }
            }
            FieldType::Email => {
                let text = as_text(value)?.trim();
                if text.len() <= 254 && text.validate_email() {
                    Ok(Value::String(text.to_string()))
                } else {
                    Err(invalid("invalid_format", "must be an email address"))
                }
            }
            FieldType::Phone => {
                let text = as_text(value)?;
                normalise_us_phone(text).map(Value::String).ok_or_else(|| {
                    invalid("invalid_format", "must be a US phone number with 10 digits")
                })
            }
        }
    }
}

fn as_text(value: &Value) -> Result<&str, ValueError> {
    match value {
        Value::String(s) => Ok(s),
        _ => Err(invalid("invalid_type", "must be a string")),
    }
}

fn check_range<T: PartialOrd + std::fmt::Display>(
    number: T,
    min: Option<T>,
    max: Option<T>,
) -> Result<(), ValueError> {
    if let Some(min) = min.filter(|min| number < *min) {
        return Err(invalid("out_of_range", format!("must be at least {min}")));
    }
    if let Some(max) = max.filter(|max| number > *max) {
        return Err(invalid("out_of_range", format!("must be at most {max}")));
    }
    Ok(())
}

/// Accepts the usual ways of writing a US number and returns it in E.164 (`+13055550123`).
pub fn normalise_us_phone(text: &str) -> Option<String> {
    if text.len() > 32 {
        return None;
    }
    let allowed = |c: char| c.is_ascii_digit() || " ()-.+".contains(c);
    if !text.chars().all(allowed) || text.chars().skip(1).any(|c| c == '+') {
        return None;
    }
    let digits: String = text.chars().filter(char::is_ascii_digit).collect();
    let national = match digits.len() {
        10 => digits.as_str(),
        11 if digits.starts_with('1') => &digits[1..],
        _ => return None,
    };
    // North American numbering: area code and exchange never start with 0 or 1.
    let bytes = national.as_bytes();
    if matches!(bytes[0], b'0' | b'1') || matches!(bytes[3], b'0' | b'1') {
        return None;
    }
    Some(format!("+1{national}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(ty: FieldType) -> FieldSpec {
        FieldSpec {
            name: "f".into(),
            ty,
            required: false,
            pii: false,
        }
    }

    #[test]
    fn phones_in_common_formats_become_e164() {
        for text in [
            "(305) 555-0123",
            "305-555-0123",
            "+1 305 555 0123",
            "3055550123",
            "1-305-555-0123",
            "305.555.0123",
        ] {
            assert_eq!(
                normalise_us_phone(text).as_deref(),
                Some("+13055550123"),
                "{text}"
            );
        }
        for text in [
            "555-0123",
            "+44 20 7946 0958",
            "(005) 555-0123",
            "305555012a",
            "30+55550123",
        ] {
            assert_eq!(normalise_us_phone(text), None, "{text}");
        }
    }

    #[test]
    fn values_are_checked_by_type() {
        let zip = spec(FieldType::Zip);
        assert_eq!(zip.normalise(&json!("33101")).unwrap(), json!("33101"));
        assert_eq!(
            zip.normalise(&json!(33101)).unwrap_err().code,
            "invalid_type"
        );
        assert_eq!(
            zip.normalise(&json!("3310")).unwrap_err().code,
            "invalid_format"
        );

        let state = spec(FieldType::UsState);
        assert_eq!(state.normalise(&json!("fl")).unwrap(), json!("FL"));
        assert!(state.normalise(&json!("XX")).is_err());

        let age = spec(FieldType::Integer {
            min: Some(16),
            max: Some(100),
        });
        assert_eq!(age.normalise(&json!(34)).unwrap(), json!(34));
        assert_eq!(age.normalise(&json!("34")).unwrap(), json!(34));
        assert_eq!(age.normalise(&json!(15)).unwrap_err().code, "out_of_range");
        assert_eq!(
            age.normalise(&json!(34.5)).unwrap_err().code,
            "invalid_type"
        );

        let date = spec(FieldType::Date);
        assert!(date.normalise(&json!("1990-02-28")).is_ok());
        assert!(date.normalise(&json!("1990-02-30")).is_err());

        let coverage = spec(FieldType::Enum {
            values: vec!["liability".into(), "full".into()],
        });
        assert!(coverage.normalise(&json!("full")).is_ok());
        assert_eq!(
            coverage.normalise(&json!("partial")).unwrap_err().code,
            "not_allowed"
        );

        let email = spec(FieldType::Email);
        assert!(email.normalise(&json!("Ana@Example.com")).is_ok());
        assert!(email.normalise(&json!("not-an-email")).is_err());

        let name = spec(FieldType::String {
            max_len: Some(3),
            pattern: Regex::new("^[a-z]+$").ok(),
        });
        assert!(name.normalise(&json!("abc")).is_ok());
        assert_eq!(name.normalise(&json!("abcd")).unwrap_err().code, "too_long");
        assert_eq!(
            name.normalise(&json!("AB")).unwrap_err().code,
            "invalid_format"
        );
    }

    #[test]
    fn error_messages_never_echo_the_value() {
        let email = spec(FieldType::Email);
        let error = email.normalise(&json!("secret-value@@x")).unwrap_err();
        assert!(!error.message.contains("secret-value"));
    }
}
