//! The buyers of the marketplace: loaded from `buyers_dir`, swapped whole on reload.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use super::buyer::Buyer;
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
    by_key: HashMap<KeyHash, usize>,
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
            market.buyers.push(Arc::new(buyer));
        }
        Ok(market)
    }

    pub fn buyer(&self, id: &str) -> Option<&Arc<Buyer>> {
        self.by_id.get(id).map(|&i| &self.buyers[i])
    }

    pub fn buyer_by_key(&self, hash: &KeyHash) -> Option<&Arc<Buyer>> {
        self.by_key.get(hash).map(|&i| &self.buyers[i])
    }

    /// The buyers that take leads of this vertical, in file order.
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
