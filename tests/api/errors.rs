//! Every 4xx class of the contract answers its status with the error JSON.

use serde_json::{json, Value};

use crate::helpers::*;

async fn error_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("an error body is JSON");
    assert!(body["error"]["code"].is_string(), "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    (status, body)
}

async fn app_with_one_buyer() -> (TestApp, TestBuyer) {
    let buyer = TestBuyer::start(Reply::bid("10.00"), Reply::accept()).await;
    let app = spawn_app(&[pinged_buyer("b1", &buyer, "")]).await;
    (app, buyer)
}

#[tokio::test]
async fn malformed_json_is_400() {
    let (app, _) = app_with_one_buyer().await;
    let response = app
        .http
        .post(format!("{}/v1/pings", app.address))
        .bearer_auth(SELLER_A_KEY)
        .header("content-type", "application/json")
        .body("{\"vertical\": ")
        .send()
        .await
        .unwrap();
    let (status, body) = error_of(response).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("malformed_json"))
    );
}

#[tokio::test]
async fn a_missing_unknown_or_non_bearer_key_is_401() {
    let (app, buyer) = app_with_one_buyer().await;
    let url = format!("{}/v1/pings", app.address);
    let missing = app.http.post(&url).json(&ping_body()).send().await.unwrap();
    let unknown = app
        .http
        .post(&url)
        .bearer_auth("not-a-known-key-000000")
        .json(&ping_body())
        .send()
        .await
        .unwrap();
    let basic = app
        .http
        .post(&url)
        .basic_auth(SELLER_A_KEY, Some("x"))
        .json(&ping_body())
        .send()
        .await
        .unwrap();
    let raw_key = app
        .http
        .post(&url)
        .header("authorization", SELLER_A_KEY)
        .json(&ping_body())
        .send()
        .await
        .unwrap();
    for response in [missing, unknown, basic, raw_key] {
        let (status, body) = error_of(response).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (401, Some("unauthorized"))
        );
    }
    assert!(buyer.bids().is_empty());
}

#[tokio::test]
async fn a_key_of_another_role_is_403() {
    let (app, buyer) = app_with_one_buyer().await;
    for key in [
        FINANCE_KEY.to_string(),
        ADMIN_KEY.to_string(),
        buyer_key("b1"),
    ] {
        let (status, body) = error_of(app.post_json("/v1/pings", &key, &ping_body()).await).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (403, Some("forbidden"))
        );
    }
    // And the other way round: a seller key on the buyer API.
    let (status, _) = error_of(
        app.post_json(
            "/v1/returns",
            SELLER_A_KEY,
            &json!({"lead_id": "lead_x", "reason": "bad"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 403);
    assert!(buyer.bids().is_empty());
}

#[tokio::test]
async fn unknown_vertical_ping_or_path_is_404() {
    let (app, _) = app_with_one_buyer().await;
    let (status, body) = error_of(
        app.post_json(
            "/v1/pings",
            SELLER_A_KEY,
            &json!({"vertical": "mortgage", "lead": {}}),
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("unknown_vertical"))
    );
    let (status, body) = error_of(app.get("/v1/pings/ping_0000", SELLER_A_KEY).await).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("ping_not_found"))
    );
    let (status, _) = error_of(app.get("/v1/nothing-here", SELLER_A_KEY).await).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_body_over_the_limit_is_413() {
    let (app, _) = app_with_one_buyer().await;
    let big = json!({"vertical": "auto_insurance", "lead": {"zip": "x".repeat(70 * 1024)}});
    let (status, body) = error_of(app.post_json("/v1/pings", SELLER_A_KEY, &big).await).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (413, Some("body_too_large"))
    );
}

#[tokio::test]
async fn a_body_that_is_not_json_is_415() {
    let (app, _) = app_with_one_buyer().await;
    let response = app
        .http
        .post(format!("{}/v1/pings", app.address))
        .bearer_auth(SELLER_A_KEY)
        .header("content-type", "text/plain")
        .body(ping_body().to_string())
        .send()
        .await
        .unwrap();
    let (status, body) = error_of(response).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (415, Some("unsupported_media_type"))
    );
}

#[tokio::test]
async fn pii_in_a_ping_is_422_naming_each_field_and_never_its_value() {
    let (app, buyer) = app_with_one_buyer().await;
    let mut lead = ping_lead();
    lead["email"] = json!("ana@example.com");
    lead["phone"] = json!("3055550100");

    let response = app
        .post_json(
            "/v1/pings",
            SELLER_A_KEY,
            &json!({"vertical": "auto_insurance", "lead": lead}),
        )
        .await;
    let text = response.text().await.unwrap();
    let body: Value = serde_json::from_str(&text).unwrap();

    assert_eq!(body["error"]["code"], "pii_in_ping");
    let mut fields: Vec<_> = body["error"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    fields.sort();
    assert_eq!(fields, ["email", "phone"]);
    assert!(!text.contains("ana@example.com") && !text.contains("3055550100"));
    assert!(
        buyer.bids().is_empty(),
        "a rejected ping is never auctioned"
    );
}

#[tokio::test]
async fn schema_errors_are_422_validation_failed_naming_each_field() {
    let (app, buyer) = app_with_one_buyer().await;
    let lead = json!({"zip": "3310", "state": "ZZ", "age": 12, "coverage": "partial", "homeowner": "maybe", "pets": 2});

    let (status, body) = error_of(
        app.post_json(
            "/v1/pings",
            SELLER_A_KEY,
            &json!({"vertical": "auto_insurance", "lead": lead}),
        )
        .await,
    )
    .await;

    assert_eq!(status, 422);
    assert_eq!(body["error"]["code"], "validation_failed");
    let mut fields: Vec<(String, String)> = body["error"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["field"].as_str().unwrap().to_string(),
                f["code"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    fields.sort();
    let expected = [
        ("age", "out_of_range"),
        ("coverage", "not_allowed"),
        ("homeowner", "invalid_type"),
        ("pets", "unknown_field"),
        ("state", "invalid_format"),
        ("zip", "invalid_format"),
    ];
    assert_eq!(
        fields,
        expected.map(|(a, b)| (a.to_string(), b.to_string()))
    );

    let missing = json!({"vertical": "auto_insurance", "lead": {"state": "FL"}});
    let (_, body) = error_of(app.post_json("/v1/pings", SELLER_A_KEY, &missing).await).await;
    assert_eq!(body["error"]["fields"][0]["field"], "zip");
    assert_eq!(body["error"]["fields"][0]["code"], "required");

    let bad_envelope = json!({"vertical": 7, "lead": [], "floor": "1.005", "extra": true});
    let (status, body) = error_of(
        app.post_json("/v1/pings", SELLER_A_KEY, &bad_envelope)
            .await,
    )
    .await;
    assert_eq!(status, 422);
    let mut names: Vec<_> = body["error"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    assert_eq!(names, ["extra", "floor", "lead", "vertical"]);
    assert!(buyer.bids().is_empty());
}

#[tokio::test]
async fn a_wrong_method_gets_the_error_json_and_the_allowed_methods() {
    let (app, _) = app_with_one_buyer().await;
    for (method, path, allowed) in [
        (reqwest::Method::DELETE, "/v1/pings", "POST"),
        (reqwest::Method::POST, "/healthz", "GET"),
        (reqwest::Method::PUT, "/v1/pings/ping_0", "GET"),
    ] {
        let response = app
            .http
            .request(method.clone(), format!("{}{path}", app.address))
            .send()
            .await
            .unwrap();
        let allow = response.headers().get("allow").cloned();
        let (status, body) = error_of(response).await;
        assert_eq!(status, 405, "{method} {path}");
        assert_eq!(body["error"]["code"], "method_not_allowed");
        assert_eq!(allow.unwrap().to_str().unwrap(), allowed, "{method} {path}");
    }
}

#[tokio::test]
async fn prices_and_dates_are_accepted_only_as_the_openapi_document_writes_them() {
    let (app, buyer) = app_with_one_buyer().await;

    for floor in ["5.000", "+5", " 5", "-0", ".5"] {
        let body = json!({"vertical": "auto_insurance", "lead": ping_lead(), "floor": floor});
        let (status, body) = error_of(app.post_json("/v1/pings", SELLER_A_KEY, &body).await).await;
        assert_eq!(status, 422, "floor {floor:?}");
        assert_eq!(body["error"]["fields"][0]["field"], "floor");
        assert_eq!(body["error"]["fields"][0]["code"], "invalid_amount");
    }
    assert!(buyer.bids().is_empty());
    for from in ["2026-1-5", "%202026-01-05", "+2026-01-05"] {
        let path = format!("/v1/sellers/me/statement?from={from}&to=2026-02-01");
        let (status, body) = error_of(app.get(&path, SELLER_A_KEY).await).await;
        assert_eq!(status, 422, "from {from:?}");
        assert_eq!(body["error"]["fields"][0]["field"], "from");
    }

    let (status, _) = app
        .send(
            "/v1/pings",
            SELLER_A_KEY,
            &json!({"vertical": "auto_insurance", "lead": ping_lead(), "floor": "5.5"}),
        )
        .await;
    assert_eq!(status, 200);
    let response = app
        .get(
            "/v1/sellers/me/statement?from=2026-01-05&to=2026-02-01",
            SELLER_A_KEY,
        )
        .await;
    assert_eq!(response.status().as_u16(), 200);
}
