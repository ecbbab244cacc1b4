//! The OpenAPI description served at `GET /openapi.json`: generated from the handlers'
//! `#[utoipa::path]` annotations and the `ToSchema` types they answer with.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "pingpost",
        description = "A ping-post lead exchange. Every error answers \
            `{\"error\": {\"code\", \"message\", \"fields\"?}}`; money is a string with two \
            decimals. Authenticate with `Authorization: Bearer <API key>`; each endpoint says \
            which role's key it takes (seller, buyer, finance or admin).",
    ),
    paths(
        routes::health::healthz,
        routes::health::readyz,
        routes::admin::metrics,
        routes::docs::openapi_json,
        routes::pings::create,
        routes::pings::show,
        routes::posts::create,
        routes::posts::direct,
        routes::buyers::create_return,
        routes::buyers::buyer_statement,
        routes::buyers::seller_statement,
        routes::admin::pause,
        routes::admin::resume,
        routes::admin::reload,
        routes::reports::revenue,
        routes::reports::ledger,
        routes::reports::auctions,
        routes::dashboard::index,
        routes::dashboard::script,
        routes::dashboard::style,
    ),
    components(schemas(crate::error::ErrorBody, crate::domain::FieldError)),
    modifiers(&BearerAuth),
    tags(
        (name = "seller", description = "Pings, posts, direct posts and the seller's statement: seller key."),
        (name = "buyer", description = "Returns and the buyer's statement: buyer key."),
        (name = "finance", description = "Revenue reports, the ledger export, auction statistics and the dashboard: finance key (the dashboard's page itself takes none)."),
        (name = "admin", description = "Live changes to the marketplace: admin key."),
        (name = "operations", description = "Health, readiness, metrics and this document: no key."),
    )
)]
pub struct ApiDoc;

/// The `bearer` security scheme the annotated endpoints name.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API key from the exchange's configuration: a seller's, a buyer's, \
                         a finance key or an admin key.",
                    ))
                    .build(),
            ),
        );
    }
}

/// The document as JSON text.
pub fn json() -> Result<String, serde_json::Error> {
    ApiDoc::openapi().to_json()
}
