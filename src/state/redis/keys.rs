//! Key names: the layout is in the parent module's documentation.

use crate::auction::CapWindow;

/// Names every key under the configured prefix.
pub(super) struct Keys {
    pub prefix: String,
}

impl Keys {
    /// The start of every key of one buyer's caps; `{buyer}` is the cluster hash tag.
    pub fn buyer(&self, buyer_id: &str) -> String {
        format!("{}cap:{{{buyer_id}}}:", self.prefix)
    }

    pub fn window(&self, buyer_id: &str, window: &CapWindow) -> String {
        format!("{}window:{}", self.buyer(buyer_id), window.key)
    }

    pub fn reservations(&self, buyer_id: &str) -> String {
        format!("{}reservations", self.buyer(buyer_id))
    }

    pub fn reservation_buyer(&self, reservation_id: &str) -> String {
        format!("{}reservation:{reservation_id}", self.prefix)
    }

    /// Scopes are seller ids, which hold no `:`, so scope and key cannot run together.
    pub fn idempotency(&self, scope: &str, key: &str) -> String {
        format!("{}idempotency:{scope}:{key}", self.prefix)
    }

    pub fn rate(&self, seller_id: &str) -> String {
        format!("{}rate:{seller_id}", self.prefix)
    }
}
