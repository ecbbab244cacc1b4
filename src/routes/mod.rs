//! HTTP routes: each parses and authorises, then calls one function of the exchange.

pub mod admin;
mod auth;
mod body;
pub mod buyers;
pub mod dashboard;
pub mod docs;
pub mod health;
pub mod pings;
pub mod posts;
pub mod reports;
pub mod responses;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::Method;
use actix_web::{web, FromRequest, Handler, HttpResponse, Responder, ResponseError, Route};

use crate::error::ApiError;
pub use auth::{authenticate, Caller};
pub use body::read_json;

/// One endpoint: a method, a path (in OpenAPI's `{name}` syntax, which actix shares) and
/// its handler.
pub struct Endpoint {
    pub method: Method,
    pub path: &'static str,
    route: Route,
}

impl Endpoint {
    fn new<F, Args>(method: Method, path: &'static str, handler: F) -> Endpoint
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        Endpoint {
            route: web::method(method.clone()).to(handler),
            method,
            path,
        }
    }
}

/// Every endpoint the server answers. `configure` serves exactly these, and each must be
/// described in `/openapi.json` (`crate::openapi`; the API tests check both ways), so a
/// route is added here, with its `#[utoipa::path]`, or not at all.
pub fn endpoints() -> Vec<Endpoint> {
    use Method as M;
    vec![
        Endpoint::new(M::GET, "/healthz", health::healthz),
        Endpoint::new(M::GET, "/readyz", health::readyz),
        Endpoint::new(M::GET, "/metrics", admin::metrics),
        Endpoint::new(M::GET, "/openapi.json", docs::openapi_json),
        Endpoint::new(M::POST, "/v1/pings", pings::create),
        Endpoint::new(M::GET, "/v1/pings/{ping_id}", pings::show),
        Endpoint::new(M::POST, "/v1/posts", posts::create),
        Endpoint::new(M::POST, "/v1/leads", posts::direct),
        Endpoint::new(M::POST, "/v1/returns", buyers::create_return),
        Endpoint::new(M::GET, "/v1/buyers/me/statement", buyers::buyer_statement),
        Endpoint::new(M::GET, "/v1/sellers/me/statement", buyers::seller_statement),
        Endpoint::new(M::POST, "/v1/admin/buyers/{buyer_id}/pause", admin::pause),
        Endpoint::new(M::POST, "/v1/admin/buyers/{buyer_id}/resume", admin::resume),
        Endpoint::new(M::POST, "/v1/admin/reload", admin::reload),
        Endpoint::new(M::GET, "/v1/reports/revenue", reports::revenue),
        Endpoint::new(M::GET, "/v1/reports/ledger", reports::ledger),
        Endpoint::new(M::GET, "/v1/reports/auctions", reports::auctions),
        Endpoint::new(M::GET, "/dashboard", dashboard::index),
        Endpoint::new(M::GET, "/dashboard/app.js", dashboard::script),
        Endpoint::new(M::GET, "/dashboard/app.css", dashboard::style),
    ]
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    // One resource per path with its methods together, so another method gets a 405.
    let mut by_path: Vec<(&'static str, Vec<Endpoint>)> = Vec::new();
    for endpoint in endpoints() {
        match by_path.iter_mut().find(|(path, _)| *path == endpoint.path) {
            Some((_, endpoints)) => endpoints.push(endpoint),
            None => by_path.push((endpoint.path, vec![endpoint])),
        }
    }
    for (path, endpoints) in by_path {
        let methods: Vec<&str> = endpoints.iter().map(|e| e.method.as_str()).collect();
        let resource = web::resource(path).default_service(method_not_allowed(methods.join(", ")));
        cfg.service(endpoints.into_iter().fold(resource, |resource, endpoint| {
            resource.route(endpoint.route)
        }));
    }
}

/// A wrong method: 405 with the contract's error JSON and the `Allow` header RFC 9110 asks for.
fn method_not_allowed(allow: String) -> Route {
    web::to(move || {
        let allow = HeaderValue::from_str(&allow).ok();
        async move {
            let mut response = ApiError::new(
                actix_web::http::StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this method is not allowed here",
            )
            .error_response();
            if let Some(allow) = allow {
                response.headers_mut().insert(header::ALLOW, allow);
            }
            response
        }
    })
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
