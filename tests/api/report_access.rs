//! Who may read the finance reports, what a bad query gets, and the dashboard's page.

use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn reports_are_for_finance_keys_only() {
    let b1 = TestBuyer::start(Reply::bid("15.00"), Reply::accept()).await;
    let app = spawn_app(&[pinged_buyer("b1", &b1, "")]).await;
    let query = "from=2026-01-01&to=2026-01-31";
    let b1_key = buyer_key("b1");
    for path in [
        format!("/v1/reports/revenue?{query}&group_by=day"),
        format!("/v1/reports/revenue?{query}&group_by=buyer&format=csv"),
        format!("/v1/reports/ledger?{query}"),
        format!("/v1/reports/ledger?{query}&format=csv"),
        format!("/v1/reports/auctions?{query}&group_by=seller"),
    ] {
        let url = format!("{}{path}", app.address);
        let status = |request: reqwest::RequestBuilder| async move {
            request.send().await.unwrap().status().as_u16()
        };
        assert_eq!(status(app.http.get(&url)).await, 401, "{path}: no key");
        assert_eq!(
            status(app.http.get(&url).bearer_auth("not-a-key-0000000000")).await,
            401,
            "{path}: unknown key"
        );
        assert_eq!(
            status(app.http.get(&url).basic_auth("finance", Some(FINANCE_KEY))).await,
            401,
            "{path}: not Bearer"
        );
        for (who, key) in [
            ("seller", SELLER_A_KEY),
            ("buyer", b1_key.as_str()),
            ("admin", ADMIN_KEY),
        ] {
            let response = app.get(&path, key).await;
            assert_eq!(response.status(), 403, "{path}: {who} key");
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"]["code"], "forbidden");
        }
        assert_eq!(app.get(&path, FINANCE_KEY).await.status(), 200, "{path}");
    }
    let (status, _) = app.ping(FINANCE_KEY, &ping_body()).await;
    assert_eq!(status, 403, "a finance key cannot ping");
}

#[tokio::test]
async fn a_bad_report_query_is_422_naming_each_field() {
    let app = spawn_app(&[]).await;
    let fields = |path: &'static str| {
        let app = &app;
        async move {
            let response = app.get(path, FINANCE_KEY).await;
            assert_eq!(response.status(), 422, "{path}");
            let body: Value = response.json().await.unwrap();
            let mut names: Vec<String> = body["error"]["fields"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["field"].as_str().unwrap().to_string())
                .collect();
            names.sort();
            names
        }
    };
    assert_eq!(
        fields("/v1/reports/revenue?from=2026-01-01&to=2026-01-31").await,
        ["group_by"]
    );
    assert_eq!(
        fields("/v1/reports/revenue?from=2026-01-01&to=2026-13-01&group_by=week&format=xml&tz=Mars/Olympus").await,
        ["format", "group_by", "to", "tz"]
    );
    assert_eq!(
        fields("/v1/reports/ledger?from=2026-02-01&to=2026-01-01").await,
        ["to"]
    );
    assert_eq!(
        fields("/v1/reports/ledger?from=2025-01-01&to=2026-01-31").await,
        ["to"]
    );
    assert_eq!(
        fields("/v1/reports/auctions?to=2026-01-01&group_by=day").await,
        ["from", "group_by"]
    );
}

#[tokio::test]
async fn the_dashboard_and_its_assets_come_from_the_binary() {
    let app = spawn_app(&[]).await;
    for (path, content_type, marker) in [
        ("/dashboard", "text/html", "/dashboard/app.js"),
        (
            "/dashboard/app.js",
            "text/javascript",
            "/v1/reports/revenue",
        ),
        ("/dashboard/app.css", "text/css", "#chart"),
    ] {
        let response = app
            .http
            .get(format!("{}{path}", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        assert!(header("content-type").starts_with(content_type), "{path}");
        assert!(header("content-security-policy").contains("script-src 'self'"));
        let body = response.text().await.unwrap();
        assert!(body.contains(marker), "{path}");
        assert!(
            !body.contains("://cdn"),
            "{path}: nothing from another origin"
        );
    }
}
