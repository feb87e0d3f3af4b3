//! Where the log lines go. The admin tool writes each line to stderr as it happens; the server
//! gathers its lines in memory and writes them out in batches, because one `write(2)` per request
//! was a measurable part of a small request's cost (issue 7: `GET /v1/files/{id}`).

use std::io::Write;
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
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
            } else {
                filtered.with(lines.with_writer(writer)).init();
            }
        }
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
