//! The handlers' input checks written into the OpenAPI document, so that a
//! request the document calls valid is one courier accepts (as far as JSON
//! Schema can say it) and clients and fuzzers can generate them: one ingest
//! schema per event type with the type's payload schema, formats, lengths,
//! item counts and ranges. The figures come from the same constants and
//! settings the checks use; the catalogue includes the operator's types.

use serde_json::{json, Map, Value};

use crate::domain::account::{MAX_EMAIL_BYTES, MAX_NAME_CHARS};
use crate::domain::catalog::{Catalog, WILDCARD};
use crate::domain::delivery::DeliveryStatus;
use crate::domain::event::MAX_IDEMPOTENCY_KEY_LEN;
use crate::domain::subscription::{MAX_DESCRIPTION_CHARS, MAX_RATE_LIMIT};
use crate::domain::target::MAX_URL_LEN;
use crate::settings::Settings;

/// Free text: no control characters (`check_text`).
const TEXT: &str = r"^[^\u0000-\u001f\u007f-\u009f]*$";
/// Free text with at least one character that is not white space (names
/// are trimmed, then must not be empty).
const NON_BLANK_TEXT: &str = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$";
/// An idempotency key: printable ASCII.
const PRINTABLE_ASCII: &str = r"^[\u0020-\u007e]+$";
/// Webhook URLs are http or https (the scheme in any case).
const HTTP_URL: &str = "^[hH][tT][tT][pP][sS]?://";

/// Adds the handlers' rules to `doc` (the annotations' document as JSON).
pub fn apply(doc: &mut Value, catalog: &Catalog, settings: &Settings) {
    let limits = &settings.limits;
    let names: Vec<&str> = catalog.iter().map(|t| t.name.as_str()).collect();
    let idempotency_key = json!({
        "minLength": 1, "maxLength": MAX_IDEMPOTENCY_KEY_LEN, "pattern": PRINTABLE_ASCII
    });
    let description = json!({"maxLength": MAX_DESCRIPTION_CHARS, "pattern": TEXT});
    let rate_limit = json!({"minimum": 1, "maximum": MAX_RATE_LIMIT});
    let event_types = json!({
        "minItems": 1,
        "maxItems": limits.max_event_types_per_subscription,
        "items": {"type": "string", "enum": names.iter().copied().chain([WILDCARD]).collect::<Vec<_>>()},
    });

    let s = "/components/schemas";
    merge(
        doc,
        &format!("{s}/CreateAccount/properties/name"),
        json!({"minLength": 1, "maxLength": MAX_NAME_CHARS, "pattern": NON_BLANK_TEXT}),
    );
    merge(
        doc,
        &format!("{s}/CreateAccount/properties/contact_email"),
        email(),
    );

    let ingest = format!("{s}/IngestRequest/properties");
    merge(
        doc,
        &format!("{ingest}/account_id"),
        json!({"format": "uuid"}),
    );
    merge(
        doc,
        &format!("{ingest}/occurred_at"),
        json!({"format": "date-time"}),
    );
    merge(
        doc,
        &format!("{ingest}/idempotency_key"),
        idempotency_key.clone(),
    );
    one_ingest_schema_per_type(doc, catalog);
    merge(
        doc,
        &format!("{s}/BatchRequest/properties/events"),
        json!({"minItems": 1, "maxItems": limits.max_batch_events}),
    );

    for body in ["CreateSubscription", "UpdateSubscription"] {
        let p = format!("{s}/{body}/properties");
        merge(doc, &format!("{p}/event_types"), event_types.clone());
        merge(doc, &format!("{p}/description"), description.clone());
        merge(doc, &format!("{p}/rate_limit"), rate_limit.clone());
    }
    channels(doc);
    merge(
        doc,
        &format!("{s}/RecoverRequest/properties/since"),
        json!({"format": "date-time"}),
    );

    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    let operations = paths
        .values_mut()
        .filter_map(Value::as_object_mut)
        .flat_map(|ops| ops.values_mut());
    for op in operations {
        let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) else {
            continue;
        };
        for param in params {
            let rule = match (param["in"].as_str(), param["name"].as_str()) {
                (Some("query"), Some("limit")) => {
                    json!({"minimum": 1, "maximum": limits.max_page_size})
                }
                // Base64url text; only cursors courier issued are taken.
                (Some("query"), Some("cursor")) => {
                    json!({"minLength": 1, "pattern": "^[A-Za-z0-9_-]+$"})
                }
                (Some("query"), Some("type")) => json!({"enum": names}),
                (Some("query"), Some("from" | "to")) => json!({"format": "date-time"}),
                (Some("query"), Some("status")) => {
                    json!({"enum": DeliveryStatus::ALL.map(DeliveryStatus::as_str)})
                }
                (Some("header"), Some(super::events::IDEMPOTENCY_KEY)) => idempotency_key.clone(),
                _ => continue,
            };
            extend(&mut param["schema"], rule);
        }
    }
}

fn email() -> Value {
    json!({"format": "email", "maxLength": MAX_EMAIL_BYTES})
}

/// `IngestRequest` becomes a `oneOf` with one object per event type: its
/// name as the `type` constant and its payload schema.
fn one_ingest_schema_per_type(doc: &mut Value, catalog: &Catalog) {
    let Some(slot) = doc.pointer_mut("/components/schemas/IngestRequest") else {
        debug_assert!(false, "openapi.json has no IngestRequest");
        return;
    };
    let mut base = slot.take();
    let description = base
        .as_object_mut()
        .and_then(|b| b.remove("description"))
        .unwrap_or(Value::Null);
    let variants: Vec<Value> = catalog
        .iter()
        .map(|t| {
            let mut variant = base.clone();
            let mut payload = t.schema.clone();
            if let Some(p) = payload.as_object_mut() {
                // Meta keys of a standalone schema mean nothing inside this document.
                p.remove("$schema");
                p.remove("$id");
                p.insert("description".into(), json!(t.description));
            }
            variant["title"] = json!(t.name);
            variant["properties"]["type"] = json!({"type": "string", "const": t.name});
            variant["properties"]["payload"] = payload;
            variant
        })
        .collect();
    *slot = json!({"description": description, "oneOf": variants});
}

/// Webhook URLs and email addresses, and no other fields in a channel.
fn channels(doc: &mut Value) {
    let Some(variants) = doc
        .pointer_mut("/components/schemas/Channel/oneOf")
        .and_then(Value::as_array_mut)
    else {
        debug_assert!(false, "openapi.json has no Channel variants");
        return;
    };
    for v in variants {
        let (field, rule) = match v["properties"]["type"]["enum"][0].as_str() {
            Some("webhook") => (
                "url",
                json!({"format": "uri", "maxLength": MAX_URL_LEN, "pattern": HTTP_URL}),
            ),
            Some("email") => ("address", email()),
            _ => continue,
        };
        extend(&mut v["properties"][field], rule);
        v["additionalProperties"] = json!(false);
    }
}

/// Adds the keys of `extra` to the object at `pointer`.
fn merge(doc: &mut Value, pointer: &str, extra: Value) {
    match doc.pointer_mut(pointer) {
        Some(target) => extend(target, extra),
        None => debug_assert!(false, "openapi.json has nothing at {pointer}"),
    }
}

fn extend(target: &mut Value, extra: Value) {
    if let (Some(t), Value::Object(e)) = (target.as_object_mut(), extra) {
        let e: Map<String, Value> = e;
        t.extend(e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use utoipa::OpenApi;

    fn document() -> Value {
        let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config");
        let settings = Settings::load_from(&dir, "test").unwrap();
        let catalog = Catalog::new(&settings.events.catalog_extras()).unwrap();
        let mut doc = serde_json::to_value(super::super::openapi::ApiDoc::openapi()).unwrap();
        apply(&mut doc, &catalog, &settings);
        doc
    }

    #[test]
    fn ingest_has_one_schema_per_event_type_with_its_payload_schema() {
        let doc = document();
        let variants = doc["components"]["schemas"]["IngestRequest"]["oneOf"]
            .as_array()
            .unwrap();
        assert_eq!(variants.len(), 7);
        let meter = variants
            .iter()
            .find(|v| v["properties"]["type"]["const"] == "meter.created")
            .unwrap();
        assert_eq!(meter["properties"]["payload"]["required"][0], "meter_id");
        assert_eq!(meter["properties"]["account_id"]["format"], "uuid");
        assert_eq!(meter["additionalProperties"], false);
    }

    #[test]
    fn bounds_match_the_checks() {
        let doc = document();
        let s = &doc["components"]["schemas"];
        assert_eq!(s["CreateAccount"]["properties"]["name"]["maxLength"], 200);
        assert_eq!(s["BatchRequest"]["properties"]["events"]["maxItems"], 1000);
        let types = &s["CreateSubscription"]["properties"]["event_types"];
        assert_eq!(types["maxItems"], 50);
        assert_eq!(types["items"]["enum"].as_array().unwrap().len(), 8);
        let limit = doc["paths"]["/v1/events"]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "limit")
            .unwrap();
        assert_eq!(limit["schema"]["minimum"], 1);
        assert_eq!(limit["schema"]["maximum"], 250);
    }

    #[test]
    fn names_must_hold_a_visible_character_and_no_control_characters() {
        let doc = document();
        let schema = &doc["components"]["schemas"]["CreateAccount"];
        let v = jsonschema::validator_for(schema).unwrap();
        let account = |name: &str| json!({"name": name, "contact_email": "ops@acme.example"});
        assert!(v.is_valid(&account("Acme Energy")));
        assert!(v.is_valid(&account(" Zoë ")));
        assert!(!v.is_valid(&account("   ")));
        assert!(!v.is_valid(&account("")));
        assert!(!v.is_valid(&account("Acme\r\nBcc: x")));
        assert!(!v.is_valid(&account(&"x".repeat(201))));
    }
}
