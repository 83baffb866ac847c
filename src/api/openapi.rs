//! `GET /openapi.json`: the OpenAPI 3 document, generated from the handlers'
//! annotations and the request/response types, with the handlers' checks
//! added (`schema_rules`).

use actix_web::{web, HttpResponse, ResponseError};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::error::ApiError;
use super::{
    accounts, dashboard_links, deliveries, error, event_types, events, health, schema_rules,
    subscriptions, AppState,
};
use crate::domain::catalog::Catalog;
use crate::domain::subscription::Channel;
use crate::settings::Settings;

struct BearerSchemes;

impl Modify for BearerSchemes {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        let bearer = |what: &str| {
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(what.to_owned()))
                    .build(),
            )
        };
        components.add_security_scheme(
            "admin_key",
            bearer("An admin key from courier's configuration"),
        );
        components.add_security_scheme("account_key", bearer("An account API key (`ck_…`)"));
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "courier", description = "Event notifications by signed webhook and email."),
    paths(
        health::healthz, health::readyz, health::metrics,
        accounts::create, accounts::rotate_key,
        dashboard_links::create,
        event_types::list,
        events::ingest, events::ingest_batch, events::list, events::get, events::replay,
        subscriptions::create, subscriptions::list, subscriptions::get,
        subscriptions::update, subscriptions::delete,
        subscriptions::rotate_secret, subscriptions::test,
        deliveries::list, deliveries::get, deliveries::retry, deliveries::recover,
    ),
    components(schemas(Channel, error::ErrorBody, error::ErrorDetail)),
    modifiers(&BearerSchemes),
)]
pub struct ApiDoc;

/// The document, for this process's catalogue and limits.
pub async fn document(st: web::Data<AppState>) -> HttpResponse {
    match build(&st.catalog, &st.settings) {
        Ok(doc) => HttpResponse::Ok().json(doc),
        Err(e) => ApiError::Internal(format!("openapi.json: {e}")).error_response(),
    }
}

/// The annotations' document with the handlers' rules and the links added.
pub fn build(catalog: &Catalog, settings: &Settings) -> serde_json::Result<serde_json::Value> {
    let mut doc = serde_json::to_value(ApiDoc::openapi())?;
    schema_rules::apply(&mut doc, catalog, settings);
    add_links(&mut doc);
    Ok(doc)
}

/// Operations taking a subscription id.
const ON_A_SUBSCRIPTION: &[&str] = &[
    "get_subscription",
    "update_subscription",
    "delete_subscription",
    "rotate_subscription_secret",
    "test_subscription",
    "list_deliveries",
    "recover_deliveries",
];
const ON_AN_EVENT: &[&str] = &["get_event", "replay_event"];
const ON_A_DELIVERY: &[&str] = &["get_delivery", "retry_delivery"];

/// OpenAPI links: where an answer's ids can be used next (a subscription
/// just created, the first event of a listing, ...), for clients and for
/// stateful test generators.
fn add_links(doc: &mut serde_json::Value) {
    let from: [(&str, &str, &str, &str, &[&str]); 7] = [
        ("/v1/subscriptions", "post", "201", "/id", ON_A_SUBSCRIPTION),
        (
            "/v1/subscriptions",
            "get",
            "200",
            "/data/0/id",
            ON_A_SUBSCRIPTION,
        ),
        ("/v1/events", "get", "200", "/data/0/id", ON_AN_EVENT),
        (
            "/v1/events/{id}",
            "get",
            "200",
            "/deliveries/0/id",
            ON_A_DELIVERY,
        ),
        (
            "/v1/subscriptions/{id}/deliveries",
            "get",
            "200",
            "/data/0/id",
            ON_A_DELIVERY,
        ),
        (
            "/v1/events/{id}/replay",
            "post",
            "202",
            "/deliveries/0",
            ON_A_DELIVERY,
        ),
        (
            "/v1/deliveries/{id}",
            "get",
            "200",
            "/event_id",
            ON_AN_EVENT,
        ),
    ];
    for (path, method, status, id, targets) in from {
        let Some(response) = doc
            .get_mut("paths")
            .and_then(|p| p.get_mut(path))
            .and_then(|p| p.get_mut(method))
            .and_then(|o| o.get_mut("responses"))
            .and_then(|r| r.get_mut(status))
            .and_then(serde_json::Value::as_object_mut)
        else {
            debug_assert!(false, "openapi.json has no {method} {path} {status}");
            continue;
        };
        let links = response
            .entry("links")
            .or_insert_with(|| serde_json::json!({}));
        for target in targets {
            links[*target] = serde_json::json!({
                "operationId": target,
                "parameters": {"id": format!("$response.body#{id}")},
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn document() -> serde_json::Value {
        let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config");
        let settings = Settings::load_from(&dir, "test").unwrap();
        build(&Catalog::new(&[]).unwrap(), &settings).unwrap()
    }

    fn operations(doc: &serde_json::Value) -> Vec<&serde_json::Value> {
        let paths = doc["paths"].as_object().unwrap();
        paths
            .values()
            .flat_map(|ops| ops.as_object().unwrap().values())
            .collect()
    }

    #[test]
    fn operation_ids_are_unique() {
        let doc = document();
        let ops = operations(&doc);
        let ids: BTreeSet<&str> = ops
            .iter()
            .map(|o| o["operationId"].as_str().unwrap())
            .collect();
        assert_eq!(ids.len(), ops.len(), "{ids:?}");
    }

    #[test]
    fn links_lead_to_operations_that_exist() {
        let doc = document();
        let ops = operations(&doc);
        let ids: BTreeSet<&str> = ops
            .iter()
            .map(|o| o["operationId"].as_str().unwrap())
            .collect();
        let links: Vec<&str> = ops
            .iter()
            .flat_map(|o| o["responses"].as_object().unwrap().values())
            .filter_map(|r| r["links"].as_object())
            .flat_map(|l| l.values())
            .map(|l| l["operationId"].as_str().unwrap())
            .collect();
        assert!(links.len() >= 15, "{links:?}");
        for target in links {
            assert!(ids.contains(target), "a link leads to {target}");
        }
    }
}
