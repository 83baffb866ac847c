use crate::helpers::{spawn_app, spawn_app_with, ADMIN_KEY};

#[actix_web::test]
async fn healthz_answers_ok() {
    let app = spawn_app().await;
    let r = app.get("/healthz", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["status"], "ok");
}

#[actix_web::test]
async fn readyz_answers_ready_when_redis_answers() {
    let app = spawn_app().await;
    let r = app.get("/readyz", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["status"], "ready");
}

#[actix_web::test]
async fn unknown_routes_and_methods_answer_json_errors() {
    let app = spawn_app().await;
    let r = app.get("/v1/nope", None).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.code(), "not_found");

    let r = app.delete("/v1/events", Some(ADMIN_KEY)).await;
    assert_eq!(r.status, 405);
    assert_eq!(r.code(), "method_not_allowed");
}

#[actix_web::test]
async fn a_method_the_route_does_not_take_gets_a_405_that_lists_those_it_takes() {
    let app = spawn_app().await;
    let (_, key) = app.create_account().await;
    for (path, allow) in [
        ("/v1/events", "GET, POST"),
        (
            "/v1/subscriptions/00000000-0000-0000-0000-000000000000",
            "DELETE, GET, PATCH",
        ),
        ("/healthz", "GET"),
    ] {
        let r = app
            .send_method(awc::http::Method::PUT, path, Some(&key))
            .await;
        assert_eq!(r.status, 405, "{path}");
        assert_eq!(r.code(), "method_not_allowed");
        assert_eq!(r.headers.get("allow").unwrap(), allow, "{path}");
    }
}

#[actix_web::test]
async fn openapi_document_describes_every_route() {
    let app = spawn_app().await;
    let r = app.get("/openapi.json", None).await;
    assert_eq!(r.status, 200);
    assert!(r.body["openapi"].as_str().unwrap().starts_with("3."));
    let paths = &r.body["paths"];
    for (path, method) in [
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/v1/accounts", "post"),
        ("/v1/api-keys/rotate", "post"),
        ("/v1/event-types", "get"),
        ("/v1/events", "post"),
        ("/v1/events", "get"),
        ("/v1/events/batch", "post"),
        ("/v1/events/{id}", "get"),
        ("/v1/subscriptions", "post"),
        ("/v1/subscriptions", "get"),
        ("/v1/subscriptions/{id}", "get"),
        ("/v1/subscriptions/{id}", "patch"),
        ("/v1/subscriptions/{id}", "delete"),
    ] {
        assert!(
            paths[path][method].is_object(),
            "{method} {path} is missing from openapi.json"
        );
    }
    assert!(r.body["components"]["securitySchemes"]["admin_key"].is_object());
}

#[actix_web::test]
async fn event_types_lists_the_catalogue_with_schemas() {
    let app = spawn_app().await;
    let r = app.get("/v1/event-types", None).await;
    assert_eq!(r.status, 200);
    let types = r.body["data"].as_array().unwrap();
    assert_eq!(types.len(), 7);
    let meter_data = types
        .iter()
        .find(|t| t["name"] == "meter_data.received")
        .unwrap();
    assert!(meter_data["description"].as_str().unwrap().len() > 10);
    assert_eq!(meter_data["schema"]["required"][0], "intervals");
}

#[actix_web::test]
async fn a_malformed_query_or_body_gets_a_400_whose_message_says_what_is_wrong() {
    let app = spawn_app().await;
    let (_, key) = app.create_account().await;
    let message =
        |r: &crate::helpers::Reply| r.body["error"]["message"].as_str().unwrap().to_owned();
    for query in ["limit=-1", "limit=abc"] {
        let r = app
            .get(&format!("/v1/subscriptions?{query}"), Some(&key))
            .await;
        assert_eq!(r.status, 400, "{query}");
        assert_eq!(r.code(), "bad_query");
        assert!(
            message(&r).contains("`limit` must be a whole number"),
            "{query}: {}",
            r.body
        );
    }
    let r = app
        .get("/v1/subscriptions?limit=10&limit=20", Some(&key))
        .await;
    assert_eq!(r.status, 400);
    assert!(
        message(&r).contains("query string is invalid"),
        "{}",
        r.body
    );

    // Malformed JSON: what is wrong and where.
    let r = app
        .post_raw(
            "/v1/subscriptions",
            Some(&key),
            b"{\n  \"event_types\": [\"*\",\n}".to_vec(),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.code(), "bad_json");
    assert!(message(&r).contains("not valid JSON"), "{}", r.body);
    assert!(message(&r).contains("line 3 column 1"), "{}", r.body);

    let r = app.post_raw("/v1/subscriptions", Some(&key), vec![]).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.code(), "bad_json");
    assert!(message(&r).contains("request body is empty"), "{}", r.body);
}

#[actix_web::test]
async fn openapi_document_follows_the_configured_limits_and_catalogue() {
    let app = spawn_app_with(|s| {
        s.limits.max_page_size = 40.try_into().unwrap();
        s.limits.default_page_size = 20.try_into().unwrap();
        s.limits.max_batch_events = 7.try_into().unwrap();
        s.events
            .extra_types
            .push(courier::settings::ExtraEventType {
                name: "invoice.paid".into(),
                description: "An invoice was paid.".into(),
                schema: r#"{"type": "object", "required": ["invoice_id"]}"#.into(),
            });
    })
    .await;
    let doc = app.get("/openapi.json", None).await.body;
    let schemas = &doc["components"]["schemas"];
    let invoice = schemas["IngestRequest"]["oneOf"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["properties"]["type"]["const"] == "invoice.paid")
        .expect("the operator's type has an ingest schema");
    assert_eq!(
        invoice["properties"]["payload"]["required"][0],
        "invoice_id"
    );
    assert_eq!(
        schemas["BatchRequest"]["properties"]["events"]["maxItems"],
        7
    );
    let limit = doc["paths"]["/v1/subscriptions"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "limit")
        .unwrap();
    assert_eq!(limit["schema"]["maximum"], 40);
}
