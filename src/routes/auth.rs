//! Bearer API keys: looked up by their SHA-256 hash, never compared in clear.

use std::sync::Arc;

use actix_web::HttpRequest;

use crate::config::{hash_key, Buyer, Principal, Seller};
use crate::error::ApiError;
use crate::exchange::Exchange;

/// The authenticated caller of a request.
pub enum Caller {
    Seller(Arc<Seller>),
    Buyer(Arc<Buyer>),
    Finance(String),
    Admin(String),
}

pub fn authenticate(req: &HttpRequest, exchange: &Exchange) -> Result<Caller, ApiError> {
    let header = req.headers().get("authorization").ok_or_else(|| {
        ApiError::unauthorized("an Authorization: Bearer <API key> header is required")
    })?;
    let text = header
        .to_str()
        .map_err(|_| ApiError::unauthorized("the Authorization header is not readable"))?;
    let (scheme, key) = text.split_once(' ').unwrap_or((text, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ApiError::unauthorized(
            "the Authorization scheme must be Bearer",
        ));
    }
    let key = key.trim();
    if key.is_empty() || key.len() > 512 {
        return Err(ApiError::unauthorized(
            "the API key is missing or malformed",
        ));
    }
    let hash = hash_key(key);
    let unknown = || ApiError::unauthorized("the API key is not known");
    match exchange.config.keys.get(&hash) {
        Some(Principal::Seller(id)) => exchange
            .config
            .sellers
            .get(id)
            .cloned()
            .map(Caller::Seller)
            .ok_or_else(unknown),
        Some(Principal::Finance(name)) => Ok(Caller::Finance(name.clone())),
        Some(Principal::Admin(name)) => Ok(Caller::Admin(name.clone())),
        Some(Principal::Buyer(_)) | None => exchange
            .marketplace()
            .buyer_by_key(&hash)
            .cloned()
            .map(Caller::Buyer)
            .ok_or_else(unknown),
    }
}

impl Caller {
    pub fn seller(self) -> Result<Arc<Seller>, ApiError> {
        match self {
            Caller::Seller(s) => Ok(s),
            _ => Err(ApiError::forbidden()),
        }
    }

    /// The finance key's name: reports and exports are finance's alone.
    pub fn finance(self) -> Result<String, ApiError> {
        match self {
            Caller::Finance(name) => Ok(name),
            _ => Err(ApiError::forbidden()),
        }
    }

    pub fn buyer(self) -> Result<Arc<Buyer>, ApiError> {
        match self {
            Caller::Buyer(b) => Ok(b),
            _ => Err(ApiError::forbidden()),
        }
    }
}
