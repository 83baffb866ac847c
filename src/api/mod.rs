//! The HTTP API: routes, handlers and their OpenAPI description. Handlers
//! stay thin: extract, call the domain to validate, call the store, shape the
//! answer.

pub mod accounts;
pub mod auth;
pub mod body;
pub mod dashboard_links;
pub mod deliveries;
pub mod error;
pub mod event_types;
pub mod events;
pub mod health;
pub mod openapi;
pub mod schema_rules;
pub mod subscriptions;

use std::sync::Arc;

use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::ServiceResponse;
use actix_web::http::header;
use actix_web::middleware::{ErrorHandlerResponse, ErrorHandlers};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use crate::domain::catalog::Catalog;
use crate::domain::event::IngestRules;
use crate::domain::subscription::SubscriptionRules;
use crate::domain::Invalid;
use crate::settings::Settings;
use crate::store::{Cursor, Store};
use error::ApiError;

/// What every handler shares.
pub struct AppState {
    pub store: Store,
    pub catalog: Catalog,
    pub settings: Arc<Settings>,
    /// Wakes this replica's scheduler when new deliveries are due now.
    pub wake: Arc<tokio::sync::Notify>,
    /// The time handlers run on.
    pub clock: crate::clock::Clock,
    /// Judges webhook host names when a subscription is written.
    pub resolver: crate::delivery::resolve::TargetResolver,
    /// This replica's dashboard statistics.
    pub stats: Arc<crate::stats::Stats>,
}

impl AppState {
    pub fn ingest_rules(&self) -> IngestRules {
        IngestRules {
            max_payload_bytes: self.settings.limits.max_payload_bytes.get(),
            retention: self.settings.retention(),
            max_future_skew: std::time::Duration::from_secs(
                self.settings.events.max_future_skew_secs,
            ),
        }
    }

    pub fn subscription_rules(&self) -> SubscriptionRules {
        SubscriptionRules {
            allow_private_targets: self.settings.delivery.allow_private_targets,
            max_event_types: self.settings.limits.max_event_types_per_subscription.get(),
        }
    }

    /// Refuses a webhook whose host name resolves only to addresses a
    /// webhook may not reach (IP literals were judged by the domain check).
    pub async fn check_target(
        &self,
        channel: &crate::domain::subscription::Channel,
    ) -> Result<(), Invalid> {
        let crate::domain::subscription::Channel::Webhook { url } = channel else {
            return Ok(());
        };
        let Some(host) = url::Url::parse(url)
            .ok()
            .and_then(|u| u.domain().map(str::to_owned))
        else {
            return Ok(());
        };
        self.resolver
            .check_at_create(&host)
            .await
            .map_err(|why| Invalid::new("channel.url", why.to_string()))
    }

    /// Counts what ingest stored and wakes the scheduler for new deliveries.
    pub fn after_ingest(
        &self,
        ingested: &[crate::domain::event::NewEvent],
        outcomes: &[crate::store::IngestOutcome],
    ) {
        let (mut events, mut deliveries) = (0u64, 0u64);
        for (e, o) in ingested.iter().zip(outcomes) {
            if let crate::store::IngestOutcome::Created { deliveries: d, .. } = o {
                events += 1;
                deliveries += u64::from(*d);
                tracing::debug!(
                    account = %e.account_id,
                    event = %e.id,
                    event_type = %e.event_type,
                    deliveries = *d,
                    "event accepted"
                );
                self.stats
                    .ingested(self.store.keys().shard_of(&e.account_id), 1);
            }
        }
        metrics::counter!(crate::metrics::EVENTS_INGESTED).increment(events);
        if deliveries > 0 {
            metrics::counter!(crate::metrics::DELIVERIES_CREATED).increment(deliveries);
            self.wake.notify_one();
        }
    }

    /// Checks `?limit=` and `?cursor=`.
    pub fn paging(&self, q: &PageQuery) -> Result<(usize, Option<Cursor>), ApiError> {
        let l = &self.settings.limits;
        let limit = match q.limit.as_deref() {
            None => l.default_page_size.get(),
            Some(text) => text.trim().parse::<usize>().map_err(|_| {
                ApiError::BadRequest(
                    "bad_query",
                    format!(
                        "query parameter `limit` must be a whole number from 1 to {}",
                        l.max_page_size
                    ),
                )
            })?,
        };
        if limit == 0 || limit > l.max_page_size.get() {
            return Err(Invalid::new(
                "limit",
                format!("must be between 1 and {}", l.max_page_size),
            )
            .into());
        }
        let cursor = q
            .cursor
            .as_deref()
            .map(|c| {
                Cursor::decode(c)
                    .ok_or_else(|| Invalid::new("cursor", "is not a cursor this API issued"))
            })
            .transpose()?;
        Ok((limit, cursor))
    }
}

/// `?limit=&cursor=` of list endpoints.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items per page (default 50, at most 250 by default). Text here, so
    /// that a value that is not a number is refused naming the parameter.
    #[param(value_type = Option<u32>, minimum = 1)]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    use web::{delete, get, patch, post, resource};
    cfg.app_data(web::QueryConfig::default().error_handler(|e, _| {
        ApiError::BadRequest("bad_query", format!("query string is invalid: {e}")).into()
    }))
    .app_data(
        web::PathConfig::default().error_handler(|_, _| ApiError::NotFound("resource").into()),
    )
    .service(resource("/healthz").route(get().to(health::healthz)))
    .service(resource("/readyz").route(get().to(health::readyz)))
    .service(resource("/openapi.json").route(get().to(openapi::document)))
    .service(resource("/metrics").route(get().to(health::metrics)))
    .configure(crate::dashboard::configure)
    .service(
        web::scope("/v1")
            .service(resource("/accounts").route(post().to(accounts::create)))
            .service(resource("/api-keys/rotate").route(post().to(accounts::rotate_key)))
            .service(resource("/dashboard/links").route(post().to(dashboard_links::create)))
            .service(resource("/event-types").route(get().to(event_types::list)))
            .service(
                resource("/events")
                    .route(post().to(events::ingest))
                    .route(get().to(events::list)),
            )
            .service(resource("/events/batch").route(post().to(events::ingest_batch)))
            .service(resource("/events/{id}").route(get().to(events::get)))
            .service(resource("/events/{id}/replay").route(post().to(events::replay)))
            .service(resource("/deliveries/{id}").route(get().to(deliveries::get)))
            .service(resource("/deliveries/{id}/retry").route(post().to(deliveries::retry)))
            .service(
                resource("/subscriptions")
                    .route(post().to(subscriptions::create))
                    .route(get().to(subscriptions::list)),
            )
            .service(
                resource("/subscriptions/{id}")
                    .route(get().to(subscriptions::get))
                    .route(patch().to(subscriptions::update))
                    .route(delete().to(subscriptions::delete)),
            )
            .service(resource("/subscriptions/{id}/deliveries").route(get().to(deliveries::list)))
            .service(resource("/subscriptions/{id}/recover").route(post().to(deliveries::recover)))
            .service(resource("/subscriptions/{id}/test").route(post().to(subscriptions::test)))
            .service(
                resource("/subscriptions/{id}/secret/rotate")
                    .route(post().to(subscriptions::rotate_secret)),
            ),
    )
    .default_service(web::to(no_route));
}

async fn no_route(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NoRoute(format!(
        "no route for {} {}",
        req.method(),
        req.path()
    )))
}

/// Turns any error response that is not already JSON (a 405 from the
/// router, an extractor's plain-text error) into the API's JSON shape.
pub fn json_errors<B: MessageBody + 'static>() -> ErrorHandlers<B> {
    ErrorHandlers::new().default_handler(|res: ServiceResponse<B>| {
        // JSON errors, and the dashboard's HTML error pages, stay as they are.
        let shaped = res.headers().get(header::CONTENT_TYPE).is_some_and(|v| {
            v.as_bytes().starts_with(b"application/json") || v.as_bytes().starts_with(b"text/html")
        });
        if shaped {
            return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
        }
        let status = res.status();
        let allow = if status == actix_web::http::StatusCode::METHOD_NOT_ALLOWED {
            res.request()
                .match_pattern()
                .and_then(|p| allowed_methods(&p))
        } else {
            None
        };
        let code = status
            .canonical_reason()
            .unwrap_or("error")
            .to_ascii_lowercase()
            .replace(' ', "_");
        let body = error::ErrorBody {
            error: error::ErrorDetail {
                code,
                message: status.canonical_reason().unwrap_or("error").to_owned(),
                field: None,
            },
        };
        let (req, _) = res.into_parts();
        let mut response = HttpResponse::build(status);
        if let Some(methods) = allow {
            response.insert_header((header::ALLOW, methods));
        }
        let response = response.json(body).map_into_right_body::<B>();
        let response: HttpResponse<EitherBody<B, BoxBody>> = response;
        Ok(ErrorHandlerResponse::Response(ServiceResponse::new(
            req, response,
        )))
    })
}

/// The `Allow` header of a route (its methods, from the OpenAPI document),
/// which every 405 answer carries.
fn allowed_methods(pattern: &str) -> Option<&'static str> {
    static ALLOW: std::sync::OnceLock<std::collections::HashMap<String, String>> =
        std::sync::OnceLock::new();
    let routes = ALLOW.get_or_init(|| {
        let doc = serde_json::to_value(<openapi::ApiDoc as utoipa::OpenApi>::openapi())
            .unwrap_or_default();
        let paths = doc["paths"].as_object().cloned().unwrap_or_default();
        paths
            .into_iter()
            .map(|(path, ops)| {
                let methods: Vec<String> = ops
                    .as_object()
                    .map(|o| o.keys().map(|m| m.to_ascii_uppercase()).collect())
                    .unwrap_or_default();
                (path, methods.join(", "))
            })
            .collect()
    });
    routes.get(pattern).map(String::as_str)
}
