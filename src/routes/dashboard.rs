//! `GET /dashboard`: the finance dashboard, one page whose script and style are compiled
//! into the binary. It holds no data: the page asks for a finance key and reads the finance API.

use actix_web::HttpResponse;

const INDEX_HTML: &str = include_str!("dashboard/index.html");
const APP_JS: &str = include_str!("dashboard/app.js");
const APP_CSS: &str = include_str!("dashboard/app.css");

/// Only this server's own script, style and API: no inline code, no other origin.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self' data:; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

fn asset(content_type: &str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header(("Content-Security-Policy", CSP))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .insert_header(("Referrer-Policy", "no-referrer"))
        .insert_header(("Cache-Control", "no-cache"))
        .body(body)
}

#[utoipa::path(
    get,
    path = "/dashboard",
    tag = "finance",
    responses((status = 200, description = "The finance dashboard: an HTML page that asks for a finance key and draws the reports.", content_type = "text/html", body = String))
)]
pub async fn index() -> HttpResponse {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

#[utoipa::path(
    get,
    path = "/dashboard/app.js",
    tag = "finance",
    responses((status = 200, description = "The dashboard's script.", content_type = "text/javascript", body = String))
)]
pub async fn script() -> HttpResponse {
    asset("text/javascript; charset=utf-8", APP_JS)
}

#[utoipa::path(
    get,
    path = "/dashboard/app.css",
    tag = "finance",
    responses((status = 200, description = "The dashboard's style sheet.", content_type = "text/css", body = String))
)]
pub async fn style() -> HttpResponse {
    asset("text/css; charset=utf-8", APP_CSS)
}
