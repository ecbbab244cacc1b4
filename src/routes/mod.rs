//! HTTP routes: each parses and authorises, then calls one function of the exchange.

mod auth;
mod body;
mod buyers;
mod dashboard;
mod health;
mod pings;
mod posts;
mod reports;

use actix_web::{web, HttpResponse};

use crate::error::ApiError;
pub use auth::{authenticate, Caller};
pub use body::read_json;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .service(resource("/v1/pings").route(web::post().to(pings::create)))
        .service(resource("/v1/pings/{ping_id}").route(web::get().to(pings::show)))
        .service(resource("/v1/posts").route(web::post().to(posts::create)))
        .service(resource("/v1/leads").route(web::post().to(posts::direct)))
        .service(resource("/v1/returns").route(web::post().to(buyers::create_return)))
        .service(resource("/v1/buyers/me/statement").route(web::get().to(buyers::buyer_statement)))
        .service(
            resource("/v1/sellers/me/statement").route(web::get().to(buyers::seller_statement)),
        )
        .service(resource("/v1/reports/revenue").route(web::get().to(reports::revenue)))
        .service(resource("/v1/reports/ledger").route(web::get().to(reports::ledger)))
        .service(resource("/v1/reports/auctions").route(web::get().to(reports::auctions)))
        .service(resource("/dashboard").route(web::get().to(dashboard::index)))
        .service(resource("/dashboard/app.js").route(web::get().to(dashboard::script)))
        .service(resource("/dashboard/app.css").route(web::get().to(dashboard::style)));
}

/// A resource whose wrong methods get the contract's error JSON, not an empty 405.
fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(method_not_allowed))
}

async fn method_not_allowed() -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(
        actix_web::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this method is not allowed here",
    ))
}

pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::not_found("not_found", "no such endpoint"))
}

/// A JSON body that was already serialised (a replayed response).
fn json_text(text: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(text)
}
