//! Logging: JSON lines (default, for log pipelines) or human-readable text, filtered by
//! `--log-level` / `RUST_LOG`. Nothing secret is ever passed to `tracing`.

use std::fmt;

use clap::{Args, ValueEnum};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{
    FmtContext, FormatEvent, FormatFields, FormattedFields, MakeWriter, SubscriberBuilder,
};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{EnvFilter, fmt as subscriber};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Json,
    Text,
}

#[derive(Args, Debug, Clone)]
pub struct LogArgs {
    /// Log format.
    #[arg(
        long,
        env = "KUBEINVOKE_LOG_FORMAT",
        value_enum,
        default_value = "json"
    )]
    pub log_format: LogFormat,
    /// Log filter, e.g. `info` or `kubeinvoke=debug,kube=info` (RUST_LOG syntax).
    #[arg(long, env = "KUBEINVOKE_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
}

/// Installs the global subscriber; call once, first thing.
pub fn init(args: &LogArgs) {
    let filter = EnvFilter::try_new(&args.log_level).unwrap_or_else(|_| EnvFilter::new("info"));
    match args.log_format {
        LogFormat::Json => json(filter, std::io::stderr).init(),
        LogFormat::Text => subscriber()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init(),
    }
}

/// The JSON subscriber, writing to `writer`.
fn json<W>(filter: EnvFilter, writer: W) -> SubscriberBuilder<JsonFields, JsonLines, EnvFilter, W>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    subscriber()
        .with_env_filter(filter)
        .with_writer(writer)
        .fmt_fields(JsonFields::new())
        .event_format(JsonLines)
}

/// Keys the formatter writes itself; an event field of the same name is renamed.
const RESERVED: [&str; 4] = ["timestamp", "level", "target", "spans"];

/// One JSON object per event, shaped like tracing-subscriber's JSON format with `flatten_event`
/// and the span list (`timestamp`, `level`, `message`, the event's fields, `target`, `spans`),
/// except that every key appears once. tracing-subscriber writes an event field called `message`
/// (or `target`, `level`, ...) next to its own key of that name, and most JSON parsers keep only
/// one of the two; here such a field is written as `field_<name>` instead.
struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'w> FormatFields<'w> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut timestamp = String::new();
        SystemTime.format_time(&mut Writer::new(&mut timestamp))?;
        let mut line = Object::new(&RESERVED);
        line.insert("timestamp".into(), timestamp);
        line.insert("level".into(), meta.level().as_str());
        let mut fields = Fields::default();
        event.record(&mut fields);
        // Records bridged from the `log` crate carry their real target as a field.
        let target = match fields.get("log.target") {
            Some(Value::String(t)) if meta.target() == "log" => t.clone(),
            _ => meta.target().to_string(),
        };
        for (name, value) in fields.0 {
            line.insert_field(name, value);
        }
        line.insert("target".into(), target);
        // As tracing-subscriber does: a list when the event has a span, of the current spans.
        let in_span =
            event.parent().and_then(|id| ctx.span(id)).is_some() || ctx.lookup_current().is_some();
        if in_span {
            let current = ctx.lookup_current();
            let scope = current.iter().flat_map(|leaf| leaf.scope().from_root());
            let spans = scope.map(|span| {
                let mut object = Object::new(&["name"]);
                let ext = span.extensions();
                let recorded = ext.get::<FormattedFields<N>>().map(|f| f.as_str());
                // JsonFields stores a span's fields as a JSON object.
                match recorded.map(serde_json::from_str::<Value>) {
                    Some(Ok(Value::Object(fields))) => fields
                        .into_iter()
                        .for_each(|(k, v)| object.insert_field(k, v)),
                    Some(Ok(other)) => object.insert_field("field".into(), other),
                    Some(Err(e)) => object.insert_field("field_error".into(), e.to_string().into()),
                    None => {}
                }
                object.insert("name".into(), span.metadata().name());
                object
            });
            line.insert("spans".into(), Entry::Spans(spans.collect()));
        }
        let text = serde_json::to_string(&line).map_err(|_| fmt::Error)?;
        writeln!(writer, "{text}")
    }
}

/// A JSON object that keeps insertion order and never repeats a key.
struct Object {
    entries: Vec<(String, Entry)>,
    /// Keys the formatter adds itself, perhaps after the fields.
    reserved: &'static [&'static str],
}

impl Object {
    fn new(reserved: &'static [&'static str]) -> Self {
        Self {
            entries: Vec::new(),
            reserved,
        }
    }

    fn has(&self, key: &str) -> bool {
        self.entries.iter().any(|(k, _)| k == key)
    }

    /// A key of the formatter's own (replaces an earlier field of that name, if any).
    fn insert(&mut self, key: String, value: impl Into<Entry>) {
        let value = value.into();
        match self.entries.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.entries.push((key, value)),
        }
    }

    /// An event's or span's field: under its own name when that is free, else `field_<name>`
    /// (`field_<name>_2`, ... if that is taken too).
    fn insert_field(&mut self, name: String, value: Value) {
        let free = |key: &str| !self.has(key) && !self.reserved.contains(&key);
        let key = if free(&name) {
            name
        } else {
            let base = format!("field_{name}");
            let mut key = base.clone();
            let mut n = 1;
            while !free(&key) {
                n += 1;
                key = format!("{base}_{n}");
            }
            key
        };
        self.entries.push((key, value.into()));
    }
}

/// A value of an [`Object`]: the span list keeps its objects' key order too.
enum Entry {
    Value(Value),
    Spans(Vec<Object>),
}

impl<T: Into<Value>> From<T> for Entry {
    fn from(value: T) -> Self {
        Entry::Value(value.into())
    }
}

impl Serialize for Entry {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Entry::Value(value) => value.serialize(serializer),
            Entry::Spans(spans) => spans.serialize(serializer),
        }
    }
}

impl Serialize for Object {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.entries.len()))?;
        for (k, v) in &self.entries {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// An event's fields in the order they were recorded, valued as tracing-serde values them
/// (numbers and booleans as such, everything else as its `Debug` text, errors as `Display`).
#[derive(Default)]
struct Fields(Vec<(String, Value)>);

impl Fields {
    fn get(&self, name: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    fn push(&mut self, field: &Field, value: Value) {
        self.0.push((field.name().to_string(), value));
    }
}

impl Visit for Fields {
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(field, value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.push(field, value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.push(field, value.into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field, value.into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.push(field, format!("{value:?}").into());
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};

    use super::*;

    /// A writer the test can read back.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Buffer {
        fn lines(&self) -> Vec<String> {
            let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
            text.lines().map(str::to_string).collect()
        }
    }

    /// The lines `emit` logs through `subscriber`.
    fn capture<S>(subscriber: impl FnOnce(Buffer) -> S, emit: impl FnOnce()) -> Vec<String>
    where
        S: Subscriber + Send + Sync + 'static,
    {
        let buffer = Buffer::default();
        tracing::subscriber::with_default(subscriber(buffer.clone()), emit);
        buffer.lines()
    }

    fn ours(buffer: Buffer) -> impl Subscriber + Send + Sync {
        json(EnvFilter::new("trace"), move || buffer.clone()).finish()
    }

    /// tracing-subscriber's own JSON format as `init` used to configure it.
    fn stock(buffer: Buffer) -> impl Subscriber + Send + Sync {
        subscriber()
            .with_env_filter(EnvFilter::new("trace"))
            .with_writer(move || buffer.clone())
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .finish()
    }

    /// The top-level keys of a JSON object in order, repeats included (a `serde_json::Value`
    /// would silently keep one of them).
    fn keys(line: &str) -> Vec<String> {
        struct Keys;
        impl<'de> Visitor<'de> for Keys {
            type Value = Vec<String>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Vec<String>, A::Error> {
                let mut keys = Vec::new();
                while let Some((k, IgnoredAny)) = map.next_entry::<String, IgnoredAny>()? {
                    keys.push(k);
                }
                Ok(keys)
            }
        }
        let mut de = serde_json::Deserializer::from_str(line);
        de.deserialize_map(Keys).expect("a JSON object")
    }

    fn emit_run_failed() {
        tracing::warn!(rcmd = "probe", reason = "NonZeroExit", message = %"exit code 3", "run failed");
    }

    #[test]
    fn a_field_named_message_does_not_repeat_the_key() {
        let stock_lines = capture(stock, emit_run_failed);
        let stock_keys = keys(&stock_lines[0]);
        assert_eq!(
            stock_keys.iter().filter(|k| *k == "message").count(),
            2,
            "tracing-subscriber's format repeats the key (this is what the formatter avoids): {}",
            stock_lines[0]
        );

        let lines = capture(ours, emit_run_failed);
        assert_eq!(lines.len(), 1, "{lines:?}");
        let keys = keys(&lines[0]);
        assert_eq!(
            keys,
            [
                "timestamp",
                "level",
                "message",
                "rcmd",
                "reason",
                "field_message",
                "target"
            ],
            "{}",
            lines[0]
        );
        let line: Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(line["message"], "run failed");
        assert_eq!(line["field_message"], "exit code 3");
        assert_eq!(line["level"], "WARN");
    }

    #[test]
    fn fields_named_like_the_formatters_keys_are_renamed() {
        let lines = capture(ours, || {
            let span = tracing::info_span!("reconciling object", name = "edge", attempt = 2);
            let _entered = span.enter();
            tracing::info!(
                target = "aks1",
                level = 3,
                spans = true,
                field_target = "taken",
                "dispatched"
            );
        });
        let keys = keys(&lines[0]);
        let mut unique = keys.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), keys.len(), "repeated keys: {}", lines[0]);
        let line: Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(line["target"], module_path!());
        assert_eq!(line["level"], "INFO");
        // First come, first served: the renamed `target` took `field_target`.
        assert_eq!(line["field_target"], "aks1");
        assert_eq!(line["field_field_target"], "taken");
        assert_eq!(line["field_level"], 3);
        assert_eq!(line["field_spans"], true);
        assert_eq!(
            line["spans"],
            serde_json::json!([{"field_name": "edge", "attempt": 2, "name": "reconciling object"}])
        );
    }

    #[test]
    fn ordinary_events_read_as_tracing_subscribers_format() {
        let emit = || {
            let span = tracing::info_span!("reconciling object", object = "ns/edge");
            let entered = span.enter();
            tracing::info!(
                kcx = "edge",
                attempts = 2,
                ok = true,
                ratio = 0.5,
                "kubeconfig Secret written"
            );
            drop(entered);
            tracing::debug!(error = %io::Error::other("refused"), "outside a span");
            tracing::info!(parent: &span, "explicit parent, no current span");
        };
        let ours = capture(ours, emit);
        let stock = capture(stock, emit);
        assert_eq!(ours.len(), 3);
        for (ours, stock) in ours.iter().zip(&stock) {
            // Byte for byte the same after the timestamp.
            let after_timestamp =
                |line: &str| line[line.find(",\"level\":").unwrap()..].to_string();
            assert_eq!(after_timestamp(ours), after_timestamp(stock));
            assert_eq!(keys(ours)[0], "timestamp", "{ours}");
        }
    }
}
