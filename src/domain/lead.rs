//! A vertical's lead schema, and the validation of a lead against it for a ping or a full post.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use serde_json::{Map, Value};

use super::field::{FieldSpec, FieldType};
use super::{Money, Sensitive};

/// Most fields a lead may carry; more is an abuse, not a lead.
pub const LEAD_FIELDS_MAX: usize = 128;

#[derive(Debug, Clone)]
pub struct Vertical {
    pub id: String,
    pub floor: Money,
    pub fields: Vec<FieldSpec>,
    by_name: HashMap<String, usize>,
}

/// Whether a lead is the redacted ping or the full post.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeadMode {
    Ping,
    Full,
}

/// One problem with one field of a lead, as the error JSON lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// The lead's field name (or the request's, or a query parameter's).
    #[schema(example = "zip")]
    pub field: String,
    #[schema(example = "invalid_format")]
    pub code: String,
    /// Never echoes a personal value.
    #[schema(example = "must be 5 digits")]
    pub message: String,
}

impl FieldError {
    pub fn new(field: &str, code: &str, message: impl Into<String>) -> FieldError {
        FieldError {
            field: truncate_name(field),
            code: code.to_string(),
            message: message.into(),
        }
    }
}

/// Field names come from clients: keep what we echo short.
fn truncate_name(name: &str) -> String {
    name.chars().take(64).collect()
}

/// Why a lead was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeadRejection {
    /// A ping carried personal data: each PII field present.
    PiiInPing(Vec<FieldError>),
    Invalid(Vec<FieldError>),
}

/// A validated, normalised lead. The non-PII part may go to bidders; the PII part is masked.
#[derive(Debug, Clone, Default)]
pub struct Lead {
    pub ping_fields: BTreeMap<String, Value>,
    pub pii_fields: Sensitive<BTreeMap<String, Value>>,
}

impl Lead {
    /// The full lead as the winning buyer receives it.
    pub fn full_json(&self) -> Map<String, Value> {
        let mut full: Map<String, Value> = self
            .ping_fields
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (k, v) in self.pii_fields.expose() {
            full.insert(k.clone(), v.clone());
        }
        full
    }

    pub fn ping_json(&self) -> Map<String, Value> {
        self.ping_fields
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

impl Vertical {
    pub fn new(id: String, floor: Money, fields: Vec<FieldSpec>) -> Vertical {
        let by_name = fields
            .iter()
            .enumerate()
            .map(|(i, f)| (f.name.clone(), i))
            .collect();
        Vertical {
            id,
            floor,
            fields,
            by_name,
        }
    }

    pub fn field(&self, name: &str) -> Option<&FieldSpec> {
        self.by_name.get(name).map(|&i| &self.fields[i])
    }

    /// The fields whose normalised values identify a person for dedupe: phones and emails.
    pub fn dedupe_values(&self, lead: &Lead) -> Vec<String> {
        let pii = lead.pii_fields.expose();
        self.fields
            .iter()
            .filter_map(|spec| {
                let value = pii.get(&spec.name)?.as_str()?;
                match spec.ty {
                    FieldType::Phone => Some(format!("phone:{value}")),
                    FieldType::Email => Some(format!("email:{}", value.to_lowercase())),
                    _ => None,
                }
            })
            .collect()
    }

    /// Validates and normalises a lead. A `null` value counts as absent.
    pub fn validate(
        &self,
        lead: &Map<String, Value>,
        mode: LeadMode,
    ) -> Result<Lead, LeadRejection> {
        if lead.len() > LEAD_FIELDS_MAX {
            return Err(LeadRejection::Invalid(vec![FieldError::new(
                "lead",
                "too_many_fields",
                format!("a lead has at most {LEAD_FIELDS_MAX} fields"),
            )]));
        }
        if mode == LeadMode::Ping {
            let pii: Vec<FieldError> = self
                .fields
                .iter()
                .filter(|f| f.pii && lead.get(&f.name).is_some_and(|v| !v.is_null()))
                .map(|f| {
                    FieldError::new(
                        &f.name,
                        "pii_in_ping",
                        "personal data must not be sent in a ping",
                    )
                })
                .collect();
            if !pii.is_empty() {
                return Err(LeadRejection::PiiInPing(pii));
            }
        }

        let mut errors = Vec::new();
        let mut out = Lead::default();
        let mut pii_out = BTreeMap::new();
        for name in lead.keys() {
            if self.field(name).is_none() {
                errors.push(FieldError::new(
                    name,
                    "unknown_field",
                    "is not a field of this vertical",
                ));
            }
        }
        for spec in &self.fields {
            let value = lead.get(&spec.name).filter(|v| !v.is_null());
            let needed = spec.required && (mode == LeadMode::Full || !spec.pii);
            match value {
                None if needed => {
                    errors.push(FieldError::new(&spec.name, "required", "is required"))
                }
                None => {}
                Some(value) => match spec.normalise(value) {
                    Ok(normalised) if spec.pii => {
                        pii_out.insert(spec.name.clone(), normalised);
                    }
                    Ok(normalised) => {
                        out.ping_fields.insert(spec.name.clone(), normalised);
                    }
                    Err(e) => errors.push(FieldError::new(&spec.name, e.code, e.message)),
                },
            }
        }
        if !errors.is_empty() {
            return Err(LeadRejection::Invalid(errors));
        }
        out.pii_fields = Sensitive::new(pii_out);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vertical() -> Vertical {
        let field = |name: &str, ty, required, pii| FieldSpec {
            name: name.into(),
            ty,
            required,
            pii,
        };
        Vertical::new(
            "auto".into(),
            Money::parse("1.00").unwrap(),
            vec![
                field("zip", FieldType::Zip, true, false),
                field(
                    "age",
                    FieldType::Integer {
                        min: Some(16),
                        max: Some(100),
                    },
                    false,
                    false,
                ),
                field("email", FieldType::Email, true, true),
                field("phone", FieldType::Phone, true, true),
            ],
        )
    }

    fn map(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap()
    }

    #[test]
    fn a_ping_with_pii_names_each_pii_field() {
        let lead = map(json!({"zip": "33101", "email": "a@b.co", "phone": "3055550100"}));
        match vertical().validate(&lead, LeadMode::Ping) {
            Err(LeadRejection::PiiInPing(fields)) => {
                let names: Vec<_> = fields.iter().map(|f| f.field.as_str()).collect();
                assert_eq!(names, ["email", "phone"]);
            }
            other => panic!("expected pii_in_ping, got {other:?}"),
        }
    }

    #[test]
    fn a_ping_needs_only_required_non_pii_fields() {
        let lead = map(json!({"zip": "33101", "age": "40"}));
        let valid = vertical().validate(&lead, LeadMode::Ping).unwrap();
        assert_eq!(valid.ping_fields.get("age"), Some(&json!(40)));

        let missing = map(json!({"age": 40}));
        assert!(matches!(
            vertical().validate(&missing, LeadMode::Ping),
            Err(LeadRejection::Invalid(f)) if f[0].field == "zip" && f[0].code == "required"
        ));
    }

    #[test]
    fn a_full_lead_needs_pii_and_rejects_unknown_fields() {
        let lead = map(json!({"zip": "33101", "extra": 1}));
        let Err(LeadRejection::Invalid(errors)) = vertical().validate(&lead, LeadMode::Full) else {
            panic!("expected validation errors");
        };
        let mut codes: Vec<_> = errors
            .iter()
            .map(|e| (e.field.as_str(), e.code.as_str()))
            .collect();
        codes.sort();
        assert_eq!(
            codes,
            [
                ("email", "required"),
                ("extra", "unknown_field"),
                ("phone", "required")
            ]
        );
    }

    #[test]
    fn a_full_lead_keeps_pii_apart_and_normalised() {
        let lead =
            map(json!({"zip": "33101", "email": "Ana@Example.com", "phone": "(305) 555-0100"}));
        let v = vertical();
        let valid = v.validate(&lead, LeadMode::Full).unwrap();
        assert!(!valid.ping_fields.contains_key("phone"));
        assert_eq!(valid.full_json()["phone"], json!("+13055550100"));
        assert_eq!(
            v.dedupe_values(&valid),
            ["email:ana@example.com", "phone:+13055550100"]
        );
    }
}
