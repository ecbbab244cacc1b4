//! Parsed domain types with no I/O: money, ids, lead schemas and their validation.

pub mod field;
pub mod ids;
pub mod lead;
pub mod money;
pub mod sensitive;

pub use field::{FieldSpec, FieldType};
pub use lead::{FieldError, Lead, LeadMode, Vertical};
pub use money::{Money, MoneyError, SignedCents};
pub use sensitive::Sensitive;
