//! The event type catalogue: the built-in types (`event_types.json`) plus the
//! operator's additions (from configuration, handed over as plain
//! [`ExtraType`] values), each with a compiled JSON Schema that every
//! ingested payload must satisfy.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use super::Invalid;

const BUILTIN: &str = include_str!("event_types.json");

/// The wildcard a subscription uses for "every type".
pub const WILDCARD: &str = "*";

/// Most schema violations listed in one error message.
const MAX_REPORTED_ERRORS: usize = 5;

#[derive(Deserialize)]
struct Definition {
    name: String,
    description: String,
    /// A payload of the type, for people (built-in types have one; it must
    /// satisfy the schema).
    #[serde(default)]
    example: Option<Value>,
    schema: Value,
}

/// An event type added to the built-in ones, as the operator wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraType {
    pub name: String,
    pub description: String,
    /// JSON Schema of the payload, as a JSON document in a string.
    pub schema: String,
}

/// One event type.
pub struct EventType {
    pub name: String,
    pub description: String,
    pub schema: Value,
    /// A payload that satisfies the schema, shown in the catalogue.
    pub example: Option<Value>,
    validator: jsonschema::Validator,
}

/// All known event types, by name.
#[derive(Clone)]
pub struct Catalog {
    types: Arc<BTreeMap<String, EventType>>,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.types.keys()).finish()
    }
}

/// Why the catalogue could not be built (bad operator configuration).
#[derive(Debug, thiserror::Error)]
#[error("event type `{name}`: {message}")]
pub struct CatalogError {
    pub name: String,
    pub message: String,
}

/// A valid type name: lower-case words joined by `.` or `_`.
pub fn is_valid_type_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '_')
        && !name.starts_with('.')
        && !name.ends_with('.')
}

impl Catalog {
    /// The built-in types plus `extra`.
    pub fn new(extra: &[ExtraType]) -> Result<Self, CatalogError> {
        let mut defs: Vec<Definition> =
            serde_json::from_str(BUILTIN).expect("built-in event types are valid JSON");
        for e in extra {
            let schema = serde_json::from_str(&e.schema).map_err(|err| CatalogError {
                name: e.name.clone(),
                message: format!("schema is not JSON: {err}"),
            })?;
            defs.push(Definition {
                name: e.name.clone(),
                description: e.description.clone(),
                example: None,
                schema,
            });
        }
        let mut types = BTreeMap::new();
        for def in defs {
            if !is_valid_type_name(&def.name) {
                return Err(CatalogError {
                    name: def.name,
                    message: "names are lower-case letters, digits, '.' and '_'".into(),
                });
            }
            let validator = jsonschema::options()
                .should_validate_formats(true)
                .build(&def.schema)
                .map_err(|err| CatalogError {
                    name: def.name.clone(),
                    message: format!("schema is invalid: {err}"),
                })?;
            let name = def.name.clone();
            let previous = types.insert(
                name.clone(),
                EventType {
                    name: def.name,
                    description: def.description,
                    schema: def.schema,
                    example: def.example,
                    validator,
                },
            );
            if previous.is_some() {
                return Err(CatalogError {
                    name,
                    message: "is defined twice".into(),
                });
            }
        }
        Ok(Self {
            types: Arc::new(types),
        })
    }

    pub fn get(&self, name: &str) -> Option<&EventType> {
        self.types.get(name)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.types.contains_key(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &EventType> {
        self.types.values()
    }

    /// Checks `payload` against the type's schema and its extra rules.
    pub fn validate_payload(&self, type_name: &str, payload: &Value) -> Result<(), Invalid> {
        let ty = self
            .get(type_name)
            .ok_or_else(|| Invalid::new("type", format!("unknown event type `{type_name}`")))?;
        let problems: Vec<String> = ty
            .validator
            .iter_errors(payload)
            .take(MAX_REPORTED_ERRORS)
            .map(|e| {
                let path = e.instance_path().to_string();
                let at = if path.is_empty() {
                    "/".to_owned()
                } else {
                    path
                };
                format!("at {at}: {e}")
            })
            .collect();
        if !problems.is_empty() {
            return Err(Invalid::new("payload", problems.join("; ")));
        }
        if type_name == "meter_data.received" {
            check_intervals_ordered(payload)?;
        }
        Ok(())
    }
}

/// `meter_data.received`: every interval starts before it ends (a rule JSON
/// Schema cannot express). Runs after the schema, so the shape is known.
fn check_intervals_ordered(payload: &Value) -> Result<(), Invalid> {
    let intervals = payload["intervals"].as_array().into_iter().flatten();
    for (i, interval) in intervals.enumerate() {
        let parse = |key: &str| {
            interval[key]
                .as_str()
                .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        };
        if let (Some(start), Some(end)) = (parse("start_interval"), parse("end_interval")) {
            if start >= end {
                return Err(Invalid::new(
                    "payload",
                    format!("at /intervals/{i}: start_interval must be before end_interval"),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn catalog() -> Catalog {
        Catalog::new(&[]).unwrap()
    }

    #[test]
    fn every_built_in_type_has_an_example_its_schema_accepts() {
        let c = catalog();
        for t in c.iter() {
            let example = t
                .example
                .as_ref()
                .unwrap_or_else(|| panic!("{} has no example", t.name));
            c.validate_payload(&t.name, example)
                .unwrap_or_else(|e| panic!("the example of {} is refused: {e}", t.name));
        }
    }

    #[test]
    fn the_seven_seeded_types_exist() {
        let c = catalog();
        let names: Vec<&str> = c.iter().map(|t| t.name.as_str()).collect();
        for expected in [
            "meter_data.received",
            "meter.created",
            "user.created",
            "customer.created",
            "api_keys.rotated",
            "hosted_consent.approved",
            "hosted_consent.revoked",
        ] {
            assert!(names.contains(&expected), "{expected}");
        }
        assert_eq!(names.len(), 7);
    }

    #[test]
    fn meter_data_needs_ordered_intervals() {
        let c = catalog();
        let good = json!({"intervals": [{"meter_id": "m1", "start_interval": "2024-05-01T00:00:00Z", "end_interval": "2024-05-02T00:00:00Z"}]});
        assert!(c.validate_payload("meter_data.received", &good).is_ok());
        let reversed = json!({"intervals": [{"meter_id": "m1", "start_interval": "2024-05-02T00:00:00Z", "end_interval": "2024-05-01T00:00:00Z"}]});
        let err = c
            .validate_payload("meter_data.received", &reversed)
            .unwrap_err();
        assert!(err.message.contains("before"), "{err}");
        let not_a_date = json!({"intervals": [{"meter_id": "m1", "start_interval": "yesterday", "end_interval": "2024-05-01T00:00:00Z"}]});
        assert!(c
            .validate_payload("meter_data.received", &not_a_date)
            .is_err());
        assert!(c
            .validate_payload("meter_data.received", &json!({"intervals": []}))
            .is_err());
    }

    #[test]
    fn schema_errors_name_the_path() {
        let err = catalog()
            .validate_payload("meter.created", &json!({"meter_id": 5}))
            .unwrap_err();
        assert_eq!(err.field, "payload");
        assert!(err.message.contains("/meter_id"), "{}", err.message);
        assert!(err.message.contains("customer_id"), "{}", err.message);
    }

    #[test]
    fn unknown_types_are_rejected() {
        let err = catalog()
            .validate_payload("meter.exploded", &json!({}))
            .unwrap_err();
        assert_eq!(err.field, "type");
    }

    #[test]
    fn operators_can_add_types() {
        let extra = ExtraType {
            name: "invoice.paid".into(),
            description: "An invoice was paid.".into(),
            schema: r#"{"type": "object", "required": ["invoice_id"]}"#.into(),
        };
        let c = Catalog::new(std::slice::from_ref(&extra)).unwrap();
        assert!(c
            .validate_payload("invoice.paid", &json!({"invoice_id": "i1"}))
            .is_ok());
        assert!(c.validate_payload("invoice.paid", &json!({})).is_err());

        let bad_name = ExtraType {
            name: "Invoice Paid".into(),
            ..extra.clone()
        };
        assert!(Catalog::new(&[bad_name]).is_err());
        let bad_schema = ExtraType {
            schema: "{".into(),
            ..extra.clone()
        };
        assert!(Catalog::new(&[bad_schema]).is_err());
        let duplicate = ExtraType {
            name: "meter.created".into(),
            ..extra
        };
        assert!(Catalog::new(&[duplicate]).is_err());
    }
}
