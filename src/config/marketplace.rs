//! The buyers of the marketplace: loaded from `buyers_dir`, swapped whole on reload.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use serde_json::Value;

use super::buyer::{Buyer, FilterRule};
use super::raw::RawBuyer;
use super::{ConfigError, KeyHash, Principal, Seller};
use crate::domain::Vertical;

/// Most buyer files one marketplace loads.
const BUYERS_MAX: usize = 100_000;

#[derive(Debug, Default)]
pub struct Marketplace {
    pub buyers: Vec<Arc<Buyer>>,
    by_id: HashMap<String, usize>,
    by_vertical: HashMap<String, Vec<usize>>,
    /// Per vertical, its buyers by the value of one filtered field.
    index: HashMap<String, FieldIndex>,
    by_key: HashMap<KeyHash, usize>,
    /// The largest `timeout_ms` of any buyer (the post lease is counted from it on every
    /// ping and post, and a scan of 10,000 buyers each time cost more than the rest of it).
    timeout_ms_max: Option<u64>,
}

/// The buyers of one vertical by the value of the lead field that most of them filter on with
/// `in` or `eq` (usually the state): a ping looks up the buyers that can take its value and
/// checks only those, with the buyers that do not filter on the field. A lookup returns every
/// buyer that can be eligible, and some that are not: eligibility still checks each in full.
#[derive(Debug, Default)]
struct FieldIndex {
    field: String,
    /// The JSON text of a value → the buyers whose filter on `field` admits it, in file order.
    by_value: HashMap<String, Vec<usize>>,
    /// Buyers without an indexable filter on `field`, in file order.
    others: Vec<usize>,
}

/// The values a buyer's filter on `field` admits, when the filter is `in` or `eq` over strings,
/// booleans and integers: their JSON text is equal exactly when the values are.
fn admitted_values<'a>(buyer: &'a Buyer, field: &str) -> Option<&'a [Value]> {
    let admitted = buyer.filters.iter().find_map(|f| match &f.rule {
        _ if f.field != field => None,
        FilterRule::In(values) => Some(values.as_slice()),
        FilterRule::Eq(value) => Some(std::slice::from_ref(value)),
        _ => None,
    })?;
    admitted
        .iter()
        .all(|v| v.is_string() || v.is_boolean() || v.is_i64() || v.is_u64())
        .then_some(admitted)
}

impl FieldIndex {
    /// Indexes on the field that leaves a ping the fewest buyers to check; `None` when no
    /// buyer has an indexable filter.
    fn build(buyers: &[Arc<Buyer>], members: &[usize]) -> Option<FieldIndex> {
        let mut fields: Vec<&str> = members
            .iter()
            .flat_map(|&i| buyers[i].filters.iter().map(|f| f.field.as_str()))
            .collect();
        fields.sort_unstable();
        fields.dedup();
        fields
            .into_iter()
            .map(|field| FieldIndex::on(field, buyers, members))
            // Ties go to the first field by name, so a reload indexes the same way.
            .min_by_key(FieldIndex::expected_candidates)
            .filter(|index| !index.by_value.is_empty())
    }

    fn on(field: &str, buyers: &[Arc<Buyer>], members: &[usize]) -> FieldIndex {
        let mut index = FieldIndex {
            field: field.to_string(),
            ..FieldIndex::default()
        };
        for &i in members {
            match admitted_values(&buyers[i], field) {
                Some(values) => {
                    let mut keys: Vec<String> = values.iter().map(Value::to_string).collect();
                    keys.sort_unstable();
                    keys.dedup();
                    for key in keys {
                        index.by_value.entry(key).or_default().push(i);
                    }
                }
                None => index.others.push(i),
            }
        }
        index
    }

    /// Buyers a ping is left to check, on average over leads whose values come as often as
    /// buyers ask for them: the others, plus the size of a value's list weighted by its size.
    fn expected_candidates(&self) -> usize {
        let listed: usize = self.by_value.values().map(Vec::len).sum();
        let squares: usize = self.by_value.values().map(|b| b.len() * b.len()).sum();
        self.others.len() + squares.checked_div(listed).unwrap_or(0)
    }

    /// The buyers that may take a lead with these fields, in file order.
    fn candidates(&self, lead: &BTreeMap<String, Value>) -> Vec<usize> {
        // A missing field fails every filter on it: only the others remain.
        let Some(listed) = lead
            .get(&self.field)
            .and_then(|value| self.by_value.get(&value.to_string()))
        else {
            return self.others.clone();
        };
        let mut merged = Vec::with_capacity(listed.len() + self.others.len());
        let (mut a, mut b) = (listed.iter().peekable(), self.others.iter().peekable());
        loop {
            let next = match (a.peek(), b.peek()) {
                (Some(&&x), Some(&&y)) if x < y => a.next(),
                (Some(_), Some(_)) => b.next(),
                (Some(_), None) => a.next(),
                (None, Some(_)) => b.next(),
                (None, None) => break,
            };
            merged.extend(next.copied());
        }
        merged
    }
}

impl Marketplace {
    pub fn load(
        dir: &Path,
        verticals: &HashMap<String, Arc<Vertical>>,
        sellers: &HashMap<String, Arc<Seller>>,
        other_keys: &HashMap<KeyHash, Principal>,
    ) -> Result<Marketplace, ConfigError> {
        let entries = std::fs::read_dir(dir)
            .map_err(|e| ConfigError::new(dir, "buyers_dir", format!("cannot be read: {e}")))?;
        let mut files: Vec<_> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        if files.len() > BUYERS_MAX {
            return Err(ConfigError::new(
                dir,
                "buyers_dir",
                format!("holds more than {BUYERS_MAX} buyer files"),
            ));
        }
        let mut buyers = Vec::with_capacity(files.len());
        for file in &files {
            let text = std::fs::read_to_string(file)
                .map_err(|e| ConfigError::new(file, "(file)", format!("cannot be read: {e}")))?;
            let value: toml::Value = toml::from_str(&text)
                .map_err(|e| ConfigError::new(file, "(syntax)", e.message().to_string()))?;
            let raw: RawBuyer = serde_path_to_error::deserialize(value)
                .map_err(|e| ConfigError::from_serde(file, e))?;
            buyers.push(Buyer::parse(file, raw, verticals, sellers)?);
        }
        Marketplace::from_buyers(dir, buyers, other_keys)
    }

    pub fn from_buyers(
        dir: &Path,
        buyers: Vec<Buyer>,
        other_keys: &HashMap<KeyHash, Principal>,
    ) -> Result<Marketplace, ConfigError> {
        let mut market = Marketplace::default();
        for (index, buyer) in buyers.into_iter().enumerate() {
            let file = dir.join(format!("{}.toml", buyer.id));
            if market.by_id.insert(buyer.id.clone(), index).is_some() {
                return Err(ConfigError::new(
                    &file,
                    "id",
                    format!("duplicate id `{}`", buyer.id),
                ));
            }
            if let Some(hash) = buyer.api_key_hash {
                if other_keys.contains_key(&hash) || market.by_key.insert(hash, index).is_some() {
                    return Err(ConfigError::new(
                        &file,
                        "api_key",
                        "the same key is given to two principals",
                    ));
                }
            }
            for vertical in &buyer.verticals {
                market
                    .by_vertical
                    .entry(vertical.clone())
                    .or_default()
                    .push(index);
            }
            market.timeout_ms_max = market.timeout_ms_max.max(Some(buyer.timeout_ms));
            market.buyers.push(Arc::new(buyer));
        }
        for (vertical, members) in &market.by_vertical {
            if let Some(index) = FieldIndex::build(&market.buyers, members) {
                market.index.insert(vertical.clone(), index);
            }
        }
        Ok(market)
    }

    /// The slowest buyer's `timeout_ms`; `None` without buyers.
    pub fn timeout_ms_max(&self) -> Option<u64> {
        self.timeout_ms_max
    }

    pub fn buyer(&self, id: &str) -> Option<&Arc<Buyer>> {
        self.by_id.get(id).map(|&i| &self.buyers[i])
    }

    pub fn buyer_by_key(&self, hash: &KeyHash) -> Option<&Arc<Buyer>> {
        self.by_key.get(hash).map(|&i| &self.buyers[i])
    }

    /// The buyers that take leads of this vertical, in file order.
    /// The buyers of this vertical that can be eligible for a lead with these fields, in file
    /// order: every buyer whose filters can hold, and perhaps others (the caller checks each).
    pub fn candidates<'a>(
        &'a self,
        vertical: &str,
        lead: &BTreeMap<String, Value>,
    ) -> Box<dyn Iterator<Item = &'a Arc<Buyer>> + 'a> {
        match self.index.get(vertical) {
            Some(index) => Box::new(
                index
                    .candidates(lead)
                    .into_iter()
                    .map(move |i| &self.buyers[i]),
            ),
            None => Box::new(self.buyers_for_vertical(vertical)),
        }
    }

    pub fn buyers_for_vertical<'a>(
        &'a self,
        vertical: &str,
    ) -> impl Iterator<Item = &'a Arc<Buyer>> + 'a {
        self.by_vertical
            .get(vertical)
            .into_iter()
            .flatten()
            .map(move |&i| &self.buyers[i])
    }
}
