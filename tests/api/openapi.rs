//! `GET /openapi.json`: an OpenAPI 3 document that describes exactly the endpoints served.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::helpers::*;

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

async fn fetch_document(app: &TestApp) -> Value {
    let response = app
        .http
        .get(format!("{}/openapi.json", app.address))
        .send()
        .await
        .expect("request sent");
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    response.json().await.expect("the document is JSON")
}

/// (method, path) of every operation the document describes.
fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let paths = doc["paths"].as_object().expect("paths is an object");
    paths
        .iter()
        .flat_map(|(path, item)| {
            METHODS
                .iter()
                .filter(|m| item.get(**m).is_some())
                .map(|m| (m.to_string(), path.clone()))
        })
        .collect()
}

/// (method, path) of every endpoint `routes::configure` serves.
fn served() -> BTreeSet<(String, String)> {
    pingpost::routes::endpoints()
        .iter()
        .map(|e| (e.method.as_str().to_ascii_lowercase(), e.path.to_string()))
        .collect()
}

#[tokio::test]
async fn the_document_is_openapi_3_and_describes_exactly_the_served_endpoints() {
    let app = spawn_app(&[]).await;

    let doc = fetch_document(&app).await;

    let version = doc["openapi"].as_str().expect("an openapi version");
    assert!(version.starts_with("3."), "OpenAPI {version}");
    assert_eq!(doc["info"]["title"], "pingpost");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    let documented = documented(&doc);
    let served = served();
    let undocumented: Vec<_> = served.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "served but not in /openapi.json (add #[utoipa::path] and list it in src/openapi.rs): {undocumented:?}"
    );
    let phantom: Vec<_> = documented.difference(&served).collect();
    assert!(
        phantom.is_empty(),
        "in /openapi.json but not served: {phantom:?}"
    );
    assert!(served.contains(&("post".to_string(), "/v1/pings".to_string())));
}

#[tokio::test]
async fn every_endpoint_in_the_table_is_routed() {
    let app = spawn_app(&[]).await;

    for (method, path) in served() {
        // Path parameters get a value that is merely well formed.
        let url = format!(
            "{}{}",
            app.address,
            path.replace("{ping_id}", "ping_0")
                .replace("{buyer_id}", "nobody")
        );
        let method = reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
        let response = app.http.request(method.clone(), &url).send().await.unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);

        let code = body["error"]["code"].as_str().unwrap_or("");
        assert!(
            code != "not_found" && code != "method_not_allowed" && status != 405,
            "{method} {path} is in routes::endpoints() but not routed: {status} {body}"
        );
    }
}

#[tokio::test]
async fn keyed_endpoints_declare_bearer_auth_and_refuse_a_request_without_a_key() {
    let app = spawn_app(&[]).await;
    let doc = fetch_document(&app).await;
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );

    for (method, path) in documented(&doc) {
        let operation = &doc["paths"][&path][&method];
        let keyed = operation["security"]
            .as_array()
            .is_some_and(|s| s.iter().any(|r| r.get("bearer").is_some()));
        let url = format!(
            "{}{}",
            app.address,
            path.replace("{ping_id}", "ping_0")
                .replace("{buyer_id}", "nobody")
        );
        let http_method =
            reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
        let status = app
            .http
            .request(http_method, &url)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();

        if keyed {
            assert_eq!(
                status, 401,
                "{method} {path} declares a key but answers {status} without one"
            );
            for code in ["401", "403"] {
                assert!(
                    operation["responses"][code].is_object(),
                    "{method} {path} does not document {code}"
                );
            }
        } else {
            assert_ne!(
                status, 401,
                "{method} {path} needs a key its document does not declare"
            );
        }
    }
}

#[tokio::test]
async fn every_error_response_is_documented_as_the_error_json() {
    let app = spawn_app(&[]).await;
    let doc = fetch_document(&app).await;

    let mut errors_seen = 0;
    for (method, path) in documented(&doc) {
        let responses = doc["paths"][&path][&method]["responses"]
            .as_object()
            .unwrap();
        assert!(responses.contains_key("200"), "{method} {path} has no 200");
        for (status, response) in responses.iter().filter(|(s, _)| !s.starts_with('2')) {
            let schema = &response["content"]["application/json"]["schema"]["$ref"];
            assert_eq!(
                schema, "#/components/schemas/ErrorBody",
                "{method} {path} {status} is not the error JSON"
            );
            errors_seen += 1;
        }
    }
    assert!(
        errors_seen > 20,
        "only {errors_seen} error responses documented"
    );
    let error = &doc["components"]["schemas"]["ErrorDetail"];
    assert_eq!(error["required"], serde_json::json!(["code", "message"]));
    let money = &doc["components"]["schemas"]["Money"];
    assert_eq!(money["type"], "string");
    assert_eq!(money["pattern"], r"^[0-9]+\.[0-9]{2}$");
}
