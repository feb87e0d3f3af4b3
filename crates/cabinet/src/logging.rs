//! Where the log lines go. The admin tool writes each line to stderr as it happens; the server
//! gathers its lines in memory and writes them out in batches, because one `write(2)` per request
//! was a measurable part of a small request's cost (issue 7: `GET /v1/files/{id}`).

use std::io::Write;
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use cabinet_api::timestamps::{write_micros, TEXT_BYTES};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::field::{RecordFields, VisitOutput};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::format::{DefaultVisitor, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

/// How long the first line of a batch may wait for company before it is written.
const GATHER_FOR: Duration = Duration::from_millis(20);
/// A batch this large is written by the thread that filled it, so memory stays bounded under a
/// flood of lines.
const WRITE_AT_BYTES: usize = 256 * 1024;

/// How the lines of one process are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Each line as it happens: short-lived commands.
    Immediate,
    /// Batched by a background thread: the server. A line waits at most about 20 ms, and what is
    /// still waiting is written out on a panic and when `flush` is called at exit; a SIGKILL loses
    /// at most those last milliseconds.
    Batched,
}

/// Installs the global subscriber: `RUST_LOG` (default `info,sqlx=warn`), text or JSON.
pub fn init(json: bool, output: Output) {
    const DEFAULT: &str = "info,sqlx=warn";
    let wanted = std::env::var("RUST_LOG").ok().filter(|wanted| !wanted.trim().is_empty());
    let wanted = wanted.as_deref().unwrap_or(DEFAULT);
    // Targets and levels alone (all `RUST_LOG` usually says) need no `EnvFilter`, which takes a
    // lock at every span's start, entry, exit and close: a few of each per request.
    match plain_targets(wanted) {
        Some(targets) => install(targets, json, output),
        None => install(EnvFilter::try_new(wanted).unwrap_or_else(|_| EnvFilter::new(DEFAULT)), json, output),
    }
}

/// `wanted` as `Targets`, when it names only targets and levels.
fn plain_targets(wanted: &str) -> Option<Targets> {
    // `Targets` would take a span filter (`[request]=info`) for a target's name.
    if wanted.contains(['[', '{']) {
        return None;
    }
    wanted.parse().ok()
}

fn install<F>(filter: F, json: bool, output: Output)
where
    F: Layer<Registry> + Send + Sync + 'static,
{
    // Colours only for a person at a terminal, not escape codes in a log file or a collector.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let lines = tracing_subscriber::fmt::layer().with_ansi(ansi);
    let filtered = tracing_subscriber::registry().with(filter);
    match (output, json) {
        (Output::Immediate, false) => filtered.with(lines.with_writer(std::io::stderr)).init(),
        (Output::Immediate, true) => filtered.with(lines.json().with_writer(std::io::stderr)).init(),
        (Output::Batched, json) => {
            let batch = LineBatch::start();
            let writer = move || BatchWriter(batch);
            if json {
                filtered.with(lines.json().with_writer(writer)).init();
            } else if ansi {
                filtered.with(lines.with_writer(writer)).init();
            } else {
                let lines = lines.fmt_fields(PlainFields).event_format(PlainLine::default());
                filtered.with(lines.with_writer(writer)).init();
            }
        }
    }
}

/// A text line without colours, byte for byte as tracing-subscriber's default format writes it,
/// with its fixed parts (time, level, spans, target) written directly: through `fmt`, with a
/// style around each part, they were over a tenth of a small request's instructions (callgrind,
/// `GET /v1/files/{id}`). The event's own fields are still written by the layer's field
/// formatter, and a line from the `log` bridge by the default format, which tidies its fields.
#[derive(Default)]
struct PlainLine {
    bridged: tracing_subscriber::fmt::format::Format,
}

impl<S, N> FormatEvent<S, N> for PlainLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let meta = event.metadata();
        if meta.fields().field("log.target").is_some() {
            return self.bridged.format_event(ctx, writer, event);
        }
        let mut stamp = [0u8; TEXT_BYTES];
        writer.write_str(&timestamp(chrono::Utc::now(), &mut stamp))?;
        writer.write_str(match *meta.level() {
            Level::TRACE => " TRACE ",
            Level::DEBUG => " DEBUG ",
            Level::INFO => "  INFO ",
            Level::WARN => "  WARN ",
            Level::ERROR => " ERROR ",
        })?;
        if let Some(scope) = ctx.event_scope() {
            let mut seen = false;
            for span in scope.from_root() {
                writer.write_str(span.metadata().name())?;
                seen = true;
                if let Some(fields) = span.extensions().get::<FormattedFields<N>>() {
                    if !fields.is_empty() {
                        writer.write_char('{')?;
                        writer.write_str(fields)?;
                        writer.write_char('}')?;
                    }
                }
                writer.write_char(':')?;
            }
            if seen {
                writer.write_char(' ')?;
            }
        }
        writer.write_str(meta.target())?;
        writer.write_str(": ")?;
        ctx.format_fields(writer.by_ref(), event)?;
        writer.write_char('\n')
    }
}

/// Fields as tracing-subscriber's `DefaultFields` writes them without colours, byte for byte, with
/// `name=` written directly rather than through `fmt` with a style around each part. A message, an
/// error, and a raw identifier's name are left to `DefaultVisitor`, which escapes and tidies them.
struct PlainFields;

impl<'writer> FormatFields<'writer> for PlainFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> std::fmt::Result {
        let mut visitor = PlainVisitor { writer, is_empty: true, result: Ok(()) };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct PlainVisitor<'a> {
    writer: Writer<'a>,
    is_empty: bool,
    result: std::fmt::Result,
}

impl PlainVisitor<'_> {
    /// Whether `field` is written here; when not, `DefaultVisitor` writes it. `log.` fields name a
    /// bridged line's origin, which its format has shown already: neither writes them.
    fn writes(&self, field: &Field) -> bool {
        let name = field.name();
        self.result.is_ok() && name != "message" && !name.starts_with("r#") && !name.starts_with("log.")
    }

    fn field(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> std::fmt::Result) {
        let separator = if std::mem::take(&mut self.is_empty) { "" } else { " " };
        let writer = &mut self.writer;
        self.result = writer
            .write_str(separator)
            .and_then(|()| writer.write_str(field.name()))
            .and_then(|()| writer.write_char('='))
            .and_then(|()| value(writer));
    }

    fn as_default(&mut self, field: &Field, record: impl FnOnce(&mut DefaultVisitor<'_>)) {
        if self.result.is_err() || field.name().starts_with("log.") {
            return;
        }
        let mut default = DefaultVisitor::new(self.writer.by_ref(), self.is_empty);
        record(&mut default);
        self.is_empty = false;
        self.result = default.finish();
    }
}

impl Visit for PlainVisitor<'_> {
    fn record_u64(&mut self, field: &Field, value: u64) {
        if !self.writes(field) {
            return self.as_default(field, |default| default.record_u64(field, value));
        }
        self.field(field, |writer| writer.write_str(decimal(value, &mut [0; 20])));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if !self.writes(field) {
            return self.as_default(field, |default| default.record_i64(field, value));
        }
        self.field(field, |writer| {
            if value < 0 {
                writer.write_char('-')?;
            }
            writer.write_str(decimal(value.unsigned_abs(), &mut [0; 20]))
        });
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if !self.writes(field) {
            return self.as_default(field, |default| default.record_bool(field, value));
        }
        self.field(field, |writer| writer.write_str(if value { "true" } else { "false" }));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if !self.writes(field) {
            return self.as_default(field, |default| default.record_str(field, value));
        }
        self.field(field, |writer| write!(writer, "{value:?}"));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.as_default(field, |default| default.record_error(field, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if !self.writes(field) {
            return self.as_default(field, |default| default.record_debug(field, value));
        }
        self.field(field, |writer| write!(writer, "{value:?}"));
    }
}

/// `value` in decimal digits, written at the end of `out`.
fn decimal(mut value: u64, out: &mut [u8; 20]) -> &str {
    let mut start = out.len();
    loop {
        start -= 1;
        out[start] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    std::str::from_utf8(&out[start..]).expect("ASCII digits")
}

/// `at` as tracing-subscriber writes its lines' times (RFC 3339 with microseconds); years
/// outside 0–9999, which `write_micros` leaves out, through chrono.
fn timestamp(at: chrono::DateTime<chrono::Utc>, out: &mut [u8; TEXT_BYTES]) -> std::borrow::Cow<'_, str> {
    match write_micros(&at, out) {
        Some(text) => text.into(),
        None => at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string().into(),
    }
}

/// Writes out the lines still waiting in the batch (nothing when lines are not batched).
pub fn flush() {
    if let Some(batch) = BATCH.get() {
        batch.write_out();
    }
}

static BATCH: OnceLock<LineBatch> = OnceLock::new();

struct LineBatch {
    waiting: Mutex<Vec<u8>>,
    arrived: Condvar,
    /// Held while a batch is taken and written, so batches leave in the order they were taken.
    output: Mutex<Box<dyn Write + Send>>,
}

impl LineBatch {
    fn start() -> &'static LineBatch {
        let mut started = false;
        let batch = BATCH.get_or_init(|| {
            started = true;
            LineBatch::new(Box::new(std::io::stderr()))
        });
        if started {
            std::thread::Builder::new()
                .name("log-writer".into())
                .spawn(move || batch.write_batches_forever())
                .expect("spawning the log writer thread");
            let previous_hook = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                // The lines logged before a panic come before its message.
                batch.write_out();
                previous_hook(info);
            }));
        }
        batch
    }

    fn new(output: Box<dyn Write + Send>) -> Self {
        Self { waiting: Mutex::default(), arrived: Condvar::new(), output: Mutex::new(output) }
    }

    fn append(&self, line: &[u8]) {
        let mut waiting = lock(&self.waiting);
        let was_empty = waiting.is_empty();
        waiting.extend_from_slice(line);
        let full = waiting.len() >= WRITE_AT_BYTES;
        drop(waiting);
        if full {
            self.write_out();
        } else if was_empty {
            self.arrived.notify_one();
        }
    }

    fn write_batches_forever(&self) {
        loop {
            let waiting = lock(&self.waiting);
            let waiting = self
                .arrived
                .wait_while(waiting, |lines| lines.is_empty())
                .unwrap_or_else(PoisonError::into_inner);
            drop(waiting);
            std::thread::sleep(GATHER_FOR);
            self.write_out();
        }
    }

    fn write_out(&self) {
        let mut output = lock(&self.output);
        let lines = std::mem::take(&mut *lock(&self.waiting));
        if !lines.is_empty() {
            // Nowhere to report a failing stderr; the lines are dropped as `eprintln!` would.
            let _ = output.write_all(&lines);
            let _ = output.flush();
        }
    }
}

/// A poisoned lock only means a panic elsewhere while logging; the bytes are still usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

struct BatchWriter(&'static LineBatch);

impl Write for BatchWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.append(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[derive(Clone, Default)]
    struct Collected(Arc<Mutex<Vec<u8>>>);

    impl Write for Collected {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            lock(&self.0).extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn targets_and_levels_are_read_without_env_filter_and_span_filters_are_left_to_it() {
        use tracing::Level;
        let default = plain_targets("info,sqlx=warn").expect("the default is targets and levels");
        assert!(default.would_enable("cabinet_api", &Level::INFO));
        assert!(!default.would_enable("cabinet_api", &Level::DEBUG));
        assert!(!default.would_enable("sqlx::query", &Level::INFO));
        assert!(default.would_enable("sqlx::query", &Level::WARN));
        assert!(plain_targets("[request]=info").is_none());
        assert!(plain_targets("cabinet_api[request{path=/healthz}]=debug").is_none());
        assert!(plain_targets("info,not a level=loud").is_none());
    }

    /// `2026-12-04T03:49:20.133765Z`
    const TIMESTAMP_BYTES: usize = 27;

    /// What `events` log through a text layer formatting lines with `format`, each line's time
    /// cut off (and checked for its shape).
    fn lines_of<N, E>(fields: N, format: E, events: fn()) -> Vec<String>
    where
        N: for<'writer> FormatFields<'writer> + Send + Sync + 'static,
        E: FormatEvent<Registry, N> + Send + Sync + 'static,
    {
        let written = Collected::default();
        let sink = written.clone();
        let layer = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .fmt_fields(fields)
            .event_format(format)
            .with_writer(move || sink.clone());
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), events);
        let text = String::from_utf8(lock(&written.0).clone()).unwrap();
        text.lines()
            .map(|line| {
                let (time, rest) = line.split_at(TIMESTAMP_BYTES);
                assert!(chrono::DateTime::parse_from_rfc3339(time).is_ok(), "{line}");
                assert_eq!((time.as_bytes()[19], time.as_bytes()[26]), (b'.', b'Z'), "{line}");
                rest.to_owned()
            })
            .collect()
    }

    #[test]
    fn a_plain_line_is_the_default_formats_line() {
        fn events() {
            tracing::info!(count = 3, name = "quoted \"and\" escaped\n", "hello");
            let request = tracing::info_span!("request", method = %"GET", path = %"/v1/files/f_1", client = %"127.0.0.1");
            request.in_scope(|| {
                tracing::info!(status = 200u16, latency_ms = 2u64, "response");
                let inner = tracing::debug_span!("inner");
                inner.in_scope(|| tracing::warn!(target: "cabinet::elsewhere", error = %"boom", "it failed"));
                tracing::error!(kind = ?Some(1), "debugged");
            });
            tracing::trace!("no fields");
            tracing::debug!(log.target = "bridged", "as the log bridge names its fields");
            let failure = std::io::Error::other(std::io::Error::other("the cause"));
            tracing::warn!(error = &failure as &(dyn std::error::Error + 'static), "failed");
            tracing::info!(
                r#type = "raw",
                below = -42i64,
                zero = 0u64,
                top = u64::MAX,
                least = i64::MIN,
                yes = true,
                ratio = 0.5,
                big = 1u128 << 100
            );
            tracing::info!(message = "a message \u{1b}[31m with an escape", after = 1);
            tracing::info!(first = 1, "{} and {:?}", "formatted", "debugged");
            let empty = tracing::info_span!("empty");
            let _entered = empty.enter();
            let named = tracing::info_span!("named", log.target = "only log fields");
            named.in_scope(|| tracing::info!(?named, "in spans"));
        }
        let plain = lines_of(PlainFields, PlainLine::default(), events);
        assert_eq!(plain.len(), 11, "{plain:#?}");
        let default = tracing_subscriber::fmt::format::DefaultFields::new();
        assert_eq!(plain, lines_of(default, tracing_subscriber::fmt::format::Format::default(), events));
        assert!(
            plain[1].starts_with("  INFO request{method=GET path=/v1/files/f_1 client=127.0.0.1}: "),
            "{plain:#?}"
        );
    }

    #[test]
    fn decimals_are_written_whole() {
        for value in [0, 7, 10, 99, 1_000_000, u64::MAX] {
            assert_eq!(decimal(value, &mut [0; 20]), value.to_string());
        }
    }
    #[test]
    fn timestamps_are_written_as_tracing_subscriber_writes_them() {
        for at in
            ["2026-12-04T03:49:20.133765Z", "1999-01-31T23:59:59.000000Z", "2000-02-29T00:00:00.000001Z"]
        {
            let parsed = chrono::DateTime::parse_from_rfc3339(at).unwrap().with_timezone(&chrono::Utc);
            let nanos = parsed + chrono::Duration::nanoseconds(999);
            assert_eq!(timestamp(parsed, &mut [0; TEXT_BYTES]), at);
            assert_eq!(timestamp(nanos, &mut [0; TEXT_BYTES]), at, "nanoseconds are cut, not rounded");
        }
    }

    #[test]
    fn lines_wait_for_a_batch_and_leave_in_the_order_they_came() {
        let written = Collected::default();
        let batch = LineBatch::new(Box::new(written.clone()));
        batch.append(b"one\n");
        batch.append(b"two\n");
        assert!(lock(&written.0).is_empty(), "nothing is written line by line");
        batch.write_out();
        assert_eq!(&*lock(&written.0), b"one\ntwo\n");
        batch.write_out();
        assert_eq!(&*lock(&written.0), b"one\ntwo\n", "a batch is written once");
    }

    #[test]
    fn a_full_batch_is_written_by_the_thread_that_filled_it() {
        let written = Collected::default();
        let batch = LineBatch::new(Box::new(written.clone()));
        batch.append(b"first\n");
        batch.append(&vec![b'x'; WRITE_AT_BYTES]);
        assert!(lock(&batch.waiting).is_empty());
        assert_eq!(lock(&written.0).len(), WRITE_AT_BYTES + 6);
    }

    #[test]
    fn the_writer_thread_writes_a_line_within_moments() {
        let written = Collected::default();
        let batch: &'static LineBatch = Box::leak(Box::new(LineBatch::new(Box::new(written.clone()))));
        std::thread::spawn(move || batch.write_batches_forever());
        batch.append(b"hello\n");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while lock(&written.0).is_empty() {
            assert!(std::time::Instant::now() < deadline, "the line was never written");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(&*lock(&written.0), b"hello\n");
    }
}
