//! Logging through `tracing`: human-readable text or JSON, filtered by
//! `RUST_LOG` or else by `log.level`.
//!
//! JSON logs are one flat object per line, for a log shipper: `timestamp`,
//! `level`, `message`, then the fields of every enclosing span, outermost
//! first (a request's `request_id`, `http.method`, `http.route`, …), then
//! the event's own fields (`account`, `event`, `delivery`, …), which win
//! over a span's field of the same name.

use std::fmt;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{self, FormatEvent, FormatFields, JsonFields};
use tracing_subscriber::fmt::{FmtContext, FormattedFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

use crate::settings::LogSettings;

/// Installs the global subscriber; later calls are ignored (tests build many
/// applications in one process).
pub fn init(log: &LogSettings) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&log.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()));
    let _ = if log.format == "json" {
        builder
            .fmt_fields(JsonFields::new())
            .event_format(FlatJson)
            .try_init()
    } else {
        builder.try_init()
    };
}

/// The request logger's span, as `tracing-actix-web`'s default one but
/// with the request target passed through [`crate::dashboard::loggable_target`]:
/// the path of a one-time dashboard link is its secret.
pub struct RequestSpan;

impl tracing_actix_web::RootSpanBuilder for RequestSpan {
    fn on_request_start(request: &actix_web::dev::ServiceRequest) -> tracing::Span {
        use actix_web::HttpMessage;
        let target = request
            .uri()
            .path_and_query()
            .map_or("", |p| p.as_str())
            .to_owned();
        let target = crate::dashboard::loggable_target(&target).into_owned();
        let route = request
            .match_pattern()
            .unwrap_or_else(|| "default".to_owned());
        tracing::info_span!(
            "HTTP request",
            http.method = %request.method(),
            http.route = %route,
            http.target = %target,
            http.client_ip = %request.connection_info().realip_remote_addr().unwrap_or(""),
            http.status_code = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
            request_id = %request
                .extensions()
                .get::<tracing_actix_web::RequestId>()
                .map(ToString::to_string)
                .unwrap_or_default(),
            exception.message = tracing::field::Empty,
            exception.details = tracing::field::Empty,
        )
    }

    fn on_request_end<B: actix_web::body::MessageBody>(
        span: tracing::Span,
        outcome: &Result<actix_web::dev::ServiceResponse<B>, actix_web::Error>,
    ) {
        tracing_actix_web::DefaultRootSpanBuilder::on_request_end(span, outcome);
    }
}

/// The JSON line format (see the module's documentation). Span fields are
/// kept as JSON by [`JsonFields`]; they are parsed back only for a line that
/// is written.
pub struct FlatJson;

impl<S, N> FormatEvent<S, N> for FlatJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: format::Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut line = Map::new();
        line.insert(
            "timestamp".into(),
            chrono::Utc::now()
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                .into(),
        );
        line.insert(
            "level".into(),
            event.metadata().level().as_str().to_owned().into(),
        );
        let mut fields = Map::new();
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let ext = span.extensions();
                if let Some(f) = ext.get::<FormattedFields<N>>() {
                    if let Ok(Value::Object(m)) = serde_json::from_str::<Value>(f.as_str()) {
                        fields.extend(m);
                    }
                }
            }
        }
        event.record(&mut JsonVisitor(&mut fields));
        // The message first, then the fields in the order they came.
        if let Some(message) = fields.remove("message") {
            line.insert("message".into(), message);
        }
        for (k, v) in fields {
            line.entry(k).or_insert(v);
        }
        let text = serde_json::to_string(&Value::Object(line)).map_err(|_| fmt::Error)?;
        writeln!(writer, "{text}")
    }
}

/// An event's fields into a JSON object: numbers and booleans as such,
/// everything else as text.
struct JsonVisitor<'a>(&'a mut Map<String, Value>);

impl Visit for JsonVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0
            .insert(field.name().to_owned(), value.to_string().into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().to_owned(), format!("{value:?}").into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A writer into a shared buffer.
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn json_lines_are_flat_objects_with_the_spans_fields() {
        let buf = Buf::default();
        let out = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .fmt_fields(JsonFields::new())
            .event_format(FlatJson)
            .with_writer(move || out.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!(
                "HTTP request",
                request_id = "r-1",
                http.status_code = tracing::field::Empty
            );
            let _in = span.enter();
            span.record("http.status_code", 202);
            let account = uuid::Uuid::nil();
            tracing::debug!(account = %account, attempts = 3u64, ok = true, "event \"accepted\"");
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        let v: Value = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(v["level"], "DEBUG");
        assert_eq!(v["message"], "event \"accepted\"");
        assert_eq!(v["request_id"], "r-1");
        assert_eq!(v["http.status_code"], 202);
        assert_eq!(v["account"], "00000000-0000-0000-0000-000000000000");
        assert_eq!(v["attempts"], 3);
        assert_eq!(v["ok"], true);
        assert!(v["timestamp"].as_str().unwrap().ends_with('Z'));
    }
}
