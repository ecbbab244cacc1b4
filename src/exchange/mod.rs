//! The exchange: the one place the flow lives. Routes parse and authorise, then call here.

mod auction;
mod ping;
mod post;
mod returns;

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::buyer_client::BuyerClient;
use crate::config::{Config, Marketplace};
use crate::state::SharedState;
use crate::store::DynStore;

pub use auction::AuctionOutcome;
pub use ping::{PingInput, PingView};
pub use post::PostInput;
pub use returns::{Statement, StatementLine, STATEMENT_DAYS_MAX};

pub struct Exchange {
    pub config: Arc<Config>,
    marketplace: RwLock<Arc<Marketplace>>,
    paused: RwLock<HashSet<String>>,
    pub store: DynStore,
    pub state: Arc<dyn SharedState>,
    client: BuyerClient,
    /// Key for the keyed hashes of personal data (dedupe keys, post body hashes).
    hash_key: Vec<u8>,
}

impl Exchange {
    pub fn new(config: Arc<Config>, store: DynStore, state: Arc<dyn SharedState>, client: BuyerClient, hash_key: Vec<u8>) -> Exchange {
        Exchange {
            marketplace: RwLock::new(config.marketplace.clone()),
            paused: RwLock::default(),
            config,
            store,
            state,
            client,
            hash_key,
        }
    }

    /// The marketplace as it is now. An auction keeps the snapshot it started with.
    pub fn marketplace(&self) -> Arc<Marketplace> {
        self.marketplace.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn replace_marketplace(&self, market: Marketplace) {
        *self.marketplace.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(market);
    }

    pub fn is_paused(&self, buyer_id: &str) -> bool {
        self.paused.read().unwrap_or_else(|e| e.into_inner()).contains(buyer_id)
    }

    pub fn set_paused(&self, buyer_id: &str, paused: bool) {
        let mut set = self.paused.write().unwrap_or_else(|e| e.into_inner());
        if paused {
            set.insert(buyer_id.to_string());
        } else {
            set.remove(buyer_id);
        }
    }

    /// HMAC-SHA256 under the server's key: personal data is never stored or compared in clear.
    pub fn keyed_hash(&self, data: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.hash_key).expect("HMAC takes a key of any length");
        mac.update(data);
        hex::encode(mac.finalize().into_bytes())
    }
}
