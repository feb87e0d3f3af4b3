//! SQLite in WAL mode. All writes go through a single connection, so write transactions never
//! contend for the lock (and never hit SQLITE_BUSY inside the process); reads use a pool, except
//! the point lookups behind every request (`InlineReads`). Other processes (the admin CLI) wait on
//! the busy timeout.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cabinet_core::{Code, Error, Result, WorkspaceId};
use futures::future::BoxFuture;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

use crate::dialect::{Dialect, SqlStore};
use crate::errors::db_error;
use crate::read_cache::{CommitCounter, ReadCache};
use crate::rows::InlineRow;
use crate::SqliteStore;

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/sqlite/0001_spine.sql")),
    (2, include_str!("../migrations/sqlite/0002_organising.sql")),
    (3, include_str!("../migrations/sqlite/0003_access.sql")),
    (4, include_str!("../migrations/sqlite/0004_metering.sql")),
    (5, include_str!("../migrations/sqlite/0005_unknown_size.sql")),
    (6, include_str!("../migrations/sqlite/0006_live_files.sql")),
    (7, include_str!("../migrations/sqlite/0007_multipart.sql")),
    (9, include_str!("../migrations/sqlite/0009_live_file_count.sql")),
    (10, include_str!("../migrations/sqlite/0010_key_workspaces_in_order.sql")),
    (11, include_str!("../migrations/sqlite/0011_search_scoped_by_workspace.sql")),
    (12, include_str!("../migrations/sqlite/0012_names_refolded.sql")),
    (13, include_str!("../migrations/sqlite/0013_token_revocations.sql")),
    (14, include_str!("../migrations/sqlite/0014_signing_keys_and_link_generations.sql")),
    (15, include_str!("../migrations/sqlite/0015_recorded_uploads_and_shared_folders.sql")),
    (16, include_str!("../migrations/sqlite/0016_external_ids_and_tag_spellings.sql")),
    (17, include_str!("../migrations/sqlite/0017_workspace_cors_origins.sql")),
    (18, include_str!("../migrations/sqlite/0018_events.sql")),
    (19, include_str!("../migrations/sqlite/0019_s3_keys.sql")),
    (20, include_str!("../migrations/sqlite/0020_webhooks.sql")),
    (21, include_str!("../migrations/sqlite/0021_audit_log.sql")),
    (22, include_str!("../migrations/sqlite/0022_s3_objects.sql")),
    (23, include_str!("../migrations/sqlite/0023_events_pruned_by_number.sql")),
    (24, include_str!("../migrations/sqlite/0024_search_keys_per_workspace.sql")),
    (25, include_str!("../migrations/sqlite/0025_search_keys_of_four_bytes.sql")),
    (26, include_str!("../migrations/sqlite/0026_uploads_failed_by_expiry.sql")),
];

/// A SQLite database's pools, inline readers and what it keeps of their reads.
#[derive(Debug, Clone)]
pub struct SqliteDatabase {
    write: SqlitePool,
    read: SqlitePool,
    /// Absent for an in-memory database, which other connections cannot open.
    inline: Option<Arc<InlineReads>>,
    /// Kept while the WAL index says nothing has committed since (absent where it cannot be read).
    cache: Option<Arc<ReadCache>>,
}

/// Read-only connections that answer the point lookups behind every request on the calling
/// thread. sqlx runs each SQLite statement on its connection's own thread, and for a one-row
/// lookup the two thread wake-ups cost several times the query: under `GET /v1/files/{id}`, 37%
/// of the server's CPU was futex wake and wait against 10% in SQLite. A lookup holds its
/// connection for one statement of a few pages, like a read of a small file would, or, inside a
/// request scope, until the request's next store call (`SharedRead`). A busy database (another
/// process recovering the WAL) falls back to the pool, which waits.
struct InlineReads {
    path: PathBuf,
    idle: Mutex<Vec<rusqlite::Connection>>,
    opened: AtomicUsize,
    wal_index: Option<WalIndex>,
}

/// More simultaneous lookups than this wait in the pool instead of opening connections.
const MAX_INLINE_CONNECTIONS: usize = 16;

impl std::fmt::Debug for InlineReads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InlineReads").field("path", &self.path).finish_non_exhaustive()
    }
}

impl InlineReads {
    fn new(path: &Path) -> Self {
        let wal_index = WalIndex::open(path)
            .map_err(|err| {
                tracing::warn!(error = %err, "cannot read the SQLite WAL index; keys and file details are read from the database on every request")
            })
            .ok();
        Self { path: path.to_owned(), idle: Mutex::new(Vec::new()), opened: AtomicUsize::new(0), wal_index }
    }

    fn connection(&self) -> Option<rusqlite::Connection> {
        if let Some(conn) = self.idle.lock().ok()?.pop() {
            return Some(conn);
        }
        if self.opened.fetch_add(1, Ordering::Relaxed) >= MAX_INLINE_CONNECTIONS {
            self.opened.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
        // No busy wait on a runtime thread: a busy database is the pool's to wait for.
        let opened = rusqlite::Connection::open_with_flags(&self.path, flags).and_then(|conn| {
            conn.busy_timeout(Duration::ZERO)?;
            conn.pragma_update(None, "mmap_size", READ_MAP_BYTES)?;
            Ok(conn)
        });
        match opened {
            Ok(conn) => Some(conn),
            Err(err) => {
                self.opened.fetch_sub(1, Ordering::Relaxed);
                tracing::warn!(error = %err, "could not open an inline SQLite reader; using the pool");
                None
            }
        }
    }

    fn give_back(&self, conn: rusqlite::Connection) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(conn);
        }
    }

    fn rows<T>(
        self: &Arc<Self>,
        sql: &str,
        params: &[&str],
        decode: fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Option<Result<Vec<T>>> {
        match REQUEST_READS
            .try_with(|reads| self.rows_in_request(&mut reads.shared.borrow_mut(), sql, params, decode))
        {
            Ok(found) => found,
            // Outside a request scope: a statement of its own.
            Err(_) => {
                let conn = self.connection()?;
                let found = query_rows(&conn, sql, params, decode);
                self.give_back(conn);
                answer(found)
            }
        }
    }

    /// Runs a lookup in the request's shared read transaction, beginning it if there is none.
    fn rows_in_request<T>(
        self: &Arc<Self>,
        shared: &mut Option<SharedRead>,
        sql: &str,
        params: &[&str],
        decode: fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Option<Result<Vec<T>>> {
        let read = match shared.take() {
            Some(read) if Arc::ptr_eq(&read.reads, self) => read,
            other => {
                drop(other);
                let conn = self.connection()?;
                // Before the transaction's first read takes its snapshot.
                let began_at = self.wal_index.as_ref().and_then(WalIndex::state);
                let read = SharedRead { reads: self.clone(), conn: Some(conn), began_at };
                if let Err(err) =
                    read.connection().prepare_cached("BEGIN").and_then(|mut begin| begin.execute([]))
                {
                    return answer(Err(err));
                }
                read
            }
        };
        let found = answer(query_rows(read.connection(), sql, params, decode));
        if matches!(found, Some(Ok(_))) {
            *shared = Some(read);
        }
        found
    }
}

fn query_rows<T>(
    conn: &rusqlite::Connection,
    sql: &str,
    params: &[&str],
    decode: fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<Vec<T>> {
    let mut statement = conn.prepare_cached(sql)?;
    let rows = statement.query_map(rusqlite::params_from_iter(params), decode)?;
    rows.collect()
}

/// A lookup's rows; `None` (the pool is to answer, waiting) when the database cannot be locked now.
fn answer<T>(found: rusqlite::Result<Vec<T>>) -> Option<Result<Vec<T>>> {
    match found {
        Ok(rows) => Some(Ok(rows)),
        Err(rusqlite::Error::SqliteFailure(failure, _))
            if matches!(
                failure.code,
                rusqlite::ErrorCode::DatabaseBusy
                    | rusqlite::ErrorCode::DatabaseLocked
                    | rusqlite::ErrorCode::FileLockingProtocolFailed
            ) =>
        {
            None
        }
        Err(err) => Some(Err(Error::internal(err))),
    }
}

tokio::task_local! {
    /// What a request's consecutive inline lookups share.
    static REQUEST_READS: RequestReads;
}

#[derive(Default)]
struct RequestReads {
    /// Their read transaction.
    shared: RefCell<Option<SharedRead>>,
    /// The WAL index's mark as the request's first lookup read it, and the reads (`InlineReads`'
    /// address) it was read for. Kept as long as the shared read would be, so the read cache's
    /// lookups of one request read the index once: a `pread` each was most of a request's system
    /// calls under `GET /v1/files/{id}` (three lookups: the key, the file, its workspace's rules).
    mark: Cell<Option<(usize, u128)>>,
}

/// One request's read transaction on an inline connection. Each statement in a transaction of its
/// own takes and releases SQLite's locks (two `fcntl` calls and a contended mutex); the key lookup
/// and the file lookup of `GET /v1/files/{id}` sharing one take them once. The lookups see the
/// database as it was at the first of them, so the transaction ends before anything else touches
/// the store (`SqliteStore::read_pool`, `write_pool`): the request's own writes, and every read
/// after them, see the latest commit. It also ends with the request, and the API opens the scope
/// only for requests without a body, so no client holds a snapshot open by sending slowly.
struct SharedRead {
    reads: Arc<InlineReads>,
    conn: Option<rusqlite::Connection>,
    /// The WAL index's mark of the database's state before the transaction began.
    began_at: Option<u128>,
}

impl SharedRead {
    fn connection(&self) -> &rusqlite::Connection {
        self.conn.as_ref().expect("a shared read has its connection until it is dropped")
    }
}

impl Drop for SharedRead {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            // A read transaction has nothing to commit; this releases its snapshot and locks.
            let committed = || conn.prepare_cached("COMMIT").and_then(|mut commit| commit.execute([]));
            if !conn.is_autocommit() && committed().is_err() {
                // A connection in an unknown state is closed, not reused.
                self.reads.opened.fetch_sub(1, Ordering::Relaxed);
                return;
            }
            self.reads.give_back(conn);
        }
    }
}

impl CommitCounter for InlineReads {
    fn commits(&self) -> Option<u128> {
        self.wal_index.as_ref()?.state()
    }

    fn request_sees(&self) -> Option<(u128, bool)> {
        let here = std::ptr::from_ref(self).addr();
        let seen = REQUEST_READS.try_with(|reads| match reads.mark.get() {
            Some((of, mark)) if of == here => Some((mark, false)),
            _ => {
                let now = self.commits()?;
                reads.mark.set(Some((here, now)));
                Some((now, true))
            }
        });
        // Outside a request scope: read now.
        seen.unwrap_or_else(|_| self.commits().map(|now| (now, true)))
    }

    fn next_read_sees_from(&self, now: u128) -> Option<u128> {
        let open_here = |read: &SharedRead| std::ptr::eq(Arc::as_ptr(&read.reads), self);
        match REQUEST_READS.try_with(|reads| {
            reads.shared.borrow().as_ref().filter(|read| open_here(read)).map(|read| read.began_at)
        }) {
            Ok(Some(began_at)) => began_at,
            // The next read begins a transaction of its own, after `now` was read.
            _ => Some(now),
        }
    }
}

/// The header of a WAL database's index, as every connection to it shares it in the `-shm` file
/// beside it (<https://www.sqlite.org/walformat.html>). A writer rewrites it with every commit, in
/// whichever process, to make the commit visible to readers: its WAL's salt, last valid frame and
/// that frame's checksum name the state the database is in. Reading it is one `pread` of 96 bytes,
/// where a read transaction takes and releases SQLite's locks (`fcntl` calls, 1.5 a request under
/// `GET /v1/files/{id}`) and its process-wide lock of open files.
struct WalIndex {
    shm: std::fs::File,
    /// Open as long as the index is read: while any connection is, no process deletes or rebuilds
    /// the `-shm` file (the last connection to close may, and the first to open after it
    /// rebuilds it).
    _holding_it_open: Mutex<rusqlite::Connection>,
}

/// The index header's size; it is kept twice, one copy after the other.
const WAL_INDEX_HEADER_BYTES: usize = 48;
/// The index format SQLite has written since 3.7.0, at the header's start.
const WAL_INDEX_VERSION: u32 = 3_007_000;

impl WalIndex {
    fn open(path: &Path) -> std::io::Result<Self> {
        let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = rusqlite::Connection::open_with_flags(path, flags).map_err(std::io::Error::other)?;
        // A read maps the index, creating the `-shm` file if no connection had.
        let mode: String =
            conn.query_row("PRAGMA journal_mode", [], |row| row.get(0)).map_err(std::io::Error::other)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(std::io::Error::other(format!("the database is in {mode} mode, not WAL")));
        }
        conn.query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(()))
            .map_err(std::io::Error::other)?;
        // SQLite names the index after the database's path with its links resolved.
        let mut shm_path = std::fs::canonicalize(path)?.into_os_string();
        shm_path.push("-shm");
        let index = Self { shm: std::fs::File::open(shm_path)?, _holding_it_open: Mutex::new(conn) };
        match index.state() {
            Some(_) => Ok(index),
            None => Err(std::io::Error::other("the WAL index's header is not one this server reads")),
        }
    }

    /// The mark of the committed state: the WAL's salt, its last valid frame and that frame's
    /// checksum, which together name what the WAL holds on top of the database file. Not the
    /// header's count of commits (`iChange`): rebuilding the index after a writer died mid-commit
    /// starts that again at 0, where these are read back from the WAL itself. `None` when the
    /// header cannot be read, is not one this server knows, or is being rewritten (its two copies
    /// differ).
    fn state(&self) -> Option<u128> {
        let WalHeader { salt, last_frame, checksum, .. } = self.header()?;
        Some(
            u128::from(salt) << 96
                | u128::from(last_frame) << 64
                | u128::from(checksum.0) << 32
                | u128::from(checksum.1),
        )
    }

    /// The WAL as the index's header describes it; `None` as for [`Self::state`].
    fn header(&self) -> Option<WalHeader> {
        use std::os::unix::fs::FileExt;
        // The header twice, then the checkpoint information, whose first word is `nBackfill`.
        let mut header = [0u8; 2 * WAL_INDEX_HEADER_BYTES + 4];
        self.shm.read_exact_at(&mut header, 0).ok()?;
        let (first, rest) = header.split_at(WAL_INDEX_HEADER_BYTES);
        let (second, backfilled) = rest.split_at(WAL_INDEX_HEADER_BYTES);
        // Native byte order: the index is memory shared by the processes of one machine.
        let word = |at: usize| u32::from_ne_bytes(first[at..at + 4].try_into().expect("four bytes"));
        let initialised = first[12] == 1;
        if first != second || word(0) != WAL_INDEX_VERSION || !initialised {
            return None;
        }
        // `mxFrame` at 16, `aFrameCksum` at 24, `aSalt[0]` at 32.
        Some(WalHeader {
            salt: word(32),
            last_frame: word(16),
            checksum: (word(24), word(28)),
            copied: u32::from_ne_bytes(backfilled.try_into().expect("four bytes")),
        })
    }
}

/// What the WAL index's header says of the WAL.
struct WalHeader {
    /// Changes each time a writer starts the WAL again from its first frame.
    salt: u32,
    /// The last frame of the last commit.
    last_frame: u32,
    checksum: (u32, u32),
    /// Frames a checkpoint, of any connection, has copied into the database file (0 when the
    /// WAL is started again). Not part of [`WalIndex::state`]: a checkpoint changes no content.
    copied: u32,
}

/// Frames written to the WAL and not yet copied into the database file, past which the
/// checkpointer copies them: a quarter of the 1,000 at which the writer's commit checkpoints.
const CHECKPOINT_AHEAD_FRAMES: u32 = 250;
/// How often the checkpointer reads the WAL index's header (one `pread`).
const CHECKPOINT_POLL: Duration = Duration::from_millis(100);

/// Copies the WAL into the database file on a thread of its own, ahead of the writer.
///
/// SQLite has the connection whose commit takes the WAL past 1,000 frames copy them into the
/// database and fsync it before its commit returns. With one writer, that is a commit of
/// whichever request came at the wrong moment, and every write queued behind it: while another
/// tenant uploaded, about one 4 KiB direct upload in 40 waited for a checkpoint and took twice as
/// long, so one tenant's writes set another's slowest uploads. A passive checkpoint on another
/// connection takes no lock a writer or reader waits for, so this one copies the frames while the
/// writer goes on appending, and the writer's own checkpoint finds little left to copy. That one
/// stays: only a checkpoint that leaves nothing uncopied lets the next commit start the WAL again
/// from its first frame, and one beside a writer that never stops never does, so without it the
/// WAL grows without end.
///
/// Ends within [`CHECKPOINT_POLL`] of the last clone of the store being dropped.
fn checkpoint_ahead_of_the_writer(reads: &Arc<InlineReads>) {
    if reads.wal_index.is_none() {
        return;
    }
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let opened = rusqlite::Connection::open_with_flags(&reads.path, flags).and_then(|conn| {
        // Checkpoints fsync the database file, as the writer's did (`synchronous=FULL`).
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(Duration::ZERO)?;
        Ok(conn)
    });
    let conn = match opened {
        Ok(conn) => conn,
        Err(err) => {
            tracing::warn!(error = %err, "cannot open a connection for background checkpoints; the writer checkpoints alone");
            return;
        }
    };
    let store = Arc::downgrade(reads);
    // The index's header while the store is open; `None` once it has been dropped.
    let header = move || store.upgrade().map(|reads| reads.wal_index.as_ref().and_then(WalIndex::header));
    let spawned = std::thread::Builder::new().name("cabinet-checkpoint".into()).spawn(move || loop {
        std::thread::sleep(CHECKPOINT_POLL);
        let Some(wal) = header() else { return };
        let Some(wal) = wal else { continue };
        if wal.last_frame.saturating_sub(wal.copied) < CHECKPOINT_AHEAD_FRAMES {
            continue;
        }
        match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            Ok(()) => {}
            // Another process's checkpoint is running: the next poll tries again.
            Err(rusqlite::Error::SqliteFailure(failure, _)) if failure.code == rusqlite::ErrorCode::DatabaseBusy => {}
            Err(err) => {
                tracing::warn!(error = %err, "a background WAL checkpoint failed; the writer checkpoints alone for a while");
                std::thread::sleep(CHECKPOINT_POLL * 100);
            }
        }
    });
    if let Err(err) = spawned {
        tracing::warn!(error = %err, "cannot start the checkpoint thread; the writer checkpoints alone");
    }
}

/// How much of the database file a reading connection maps into memory (up to the file's size)
/// rather than reads a page at a time: a name search at 10,000,000 files reads 10,000 rows, each
/// on a page of its own, which took 18 ms through a `pread` each and 6 ms mapped. The map is the
/// kernel's page cache, shared by every connection, not memory of each; writes still go through
/// the writer's `pwrite`. The build raises SQLite's own ceiling (2 GiB) to this
/// (`.cargo/config.toml`).
const READ_MAP_BYTES: i64 = 1 << 40;

/// SQLite virtual-machine steps a pooled read runs between two offers of its core to another
/// thread: about 0.2 ms of a recursive walk that matches names with `LIKE`, less of cheaper steps.
///
/// A long read (a recursive list, a search over many names) holds its core for its whole time
/// slice, and a request thread woken on that core waits for the slice to end, up to a 4 ms tick,
/// even with the other core idle: one tenant's heavy reads became another's latency. A yield hands
/// the core over at once, and costs about a microsecond when nobody waits.
const STEPS_BETWEEN_YIELDS: i32 = 4096;

impl SqliteStore {
    /// Opens (creating if needed) the database at a `sqlite://` URL or a path, and migrates it.
    pub async fn open(url: &str) -> Result<Self> {
        let options = connect_options(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // Durable commits: a file reported SUCCESS survives a power cut, not just a crash.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        // An in-process connection cannot go stale: pinging it before every use (sqlx's default)
        // would add a round trip to its worker thread to every query.
        let write = SqlitePoolOptions::new()
            .test_before_acquire(false)
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone())
            .await
            .map_err(db_error)?;
        let read = SqlitePoolOptions::new()
            .test_before_acquire(false)
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(|conn, _| {
                Box::pin(async move {
                    conn.lock_handle().await?.set_progress_handler(STEPS_BETWEEN_YIELDS, || {
                        std::thread::yield_now();
                        true
                    });
                    Ok(())
                })
            })
            .connect_with(options.clone().read_only(true).pragma("mmap_size", READ_MAP_BYTES.to_string()))
            .await
            .map_err(db_error)?;
        let mut store = SqlStore { db: SqliteDatabase { write, read, inline: None, cache: None } };
        store.migrate().await?;
        // Only a database in a file can be opened again by its path.
        let path = options.get_filename();
        if path.is_file() {
            let reads = Arc::new(InlineReads::new(path));
            if reads.wal_index.is_some() {
                store.db.cache = Some(Arc::new(ReadCache::counted(reads.clone())));
            }
            checkpoint_ahead_of_the_writer(&reads);
            store.db.inline = Some(reads);
        }
        Ok(store)
    }

    async fn migrate(&self) -> Result<()> {
        self.apply_migrations(MIGRATIONS, None).await
    }
}

impl SqliteDatabase {
    /// Runs a read of `sql` with text parameters `$1, $2, …` on an inline connection, decoding
    /// each row with `decode`; `None` sends the caller to the pool.
    fn read_inline<T>(
        &self,
        sql: &str,
        params: &[&str],
        decode: fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Option<Result<Vec<T>>> {
        self.inline.as_ref()?.rows(sql, params, decode)
    }

    /// Ends the request's read transaction on this database, if it has one, and forgets the mark
    /// its lookups saw.
    fn end_shared_read(&self) {
        let Some(inline) = &self.inline else { return };
        let _ = REQUEST_READS.try_with(|reads| {
            let mut shared = reads.shared.borrow_mut();
            if shared.as_ref().is_some_and(|read| Arc::ptr_eq(&read.reads, inline)) {
                shared.take();
            }
            if reads.mark.get().is_some_and(|(of, _)| of == Arc::as_ptr(inline).addr()) {
                reads.mark.set(None);
            }
        });
    }
}

/// Where a name's search keys may start, the rows of `search_trigram_starts` (migration 0024):
/// byte offsets in its UTF-8.
const SEARCH_KEY_STARTS: usize = 16384;

/// Whether a name query is answered by the search index: from three bytes of UTF-8 on, and no
/// longer than the keys' starts reach (no folded name is that long; a `LIKE` answers the rest).
fn served_by_name_keys(folded: &str) -> bool {
    (3..=SEARCH_KEY_STARTS + 2).contains(&folded.len())
}

/// How far a workspace's rows are shifted in the search index's rowids (see migration 0011): an
/// index rowid is `(workspace's rowid << SEARCH_ROWID_SHIFT) | row's rowid`.
const SEARCH_ROWID_SHIFT: u32 = 38;
/// The row's own rowid within an index rowid.
const SEARCH_ROW_MASK: i64 = (1 << SEARCH_ROWID_SHIFT) - 1;

impl Dialect for SqliteDatabase {
    type Db = sqlx::Sqlite;

    /// The unary `+` of `workspace_column` keeps a name query's page on the search index.
    const FENCE_NAME_MATCHES: bool = false;

    /// sqlx runs each connection's statements on a worker thread of its own.
    const HANDS_STATEMENTS_TO_A_THREAD: bool = true;

    /// The read pool, for everything but the inline lookups.
    fn read_pool(&self) -> &SqlitePool {
        self.end_shared_read();
        &self.read
    }

    /// The writer.
    fn write_pool(&self) -> &SqlitePool {
        self.end_shared_read();
        &self.write
    }

    /// A case-folded substring match on a name: through the FTS5 index of the names' keys from
    /// three bytes on (the phrase of the query's keys matches anywhere in the name), a LIKE
    /// scan below that. The keys are the workspace's own, so the search reads only its workspace's
    /// lists and costs the same whatever other workspaces hold; it also asks for the workspace's
    /// range of index rowids only.
    fn push_name_match(
        qb: &mut sqlx::QueryBuilder<'static, sqlx::Sqlite>,
        table: &str,
        alias: &str,
        ws: &WorkspaceId,
        folded: &str,
    ) {
        if served_by_name_keys(folded) {
            qb.push(format!(
                "{alias}.rowid IN (SELECT rowid & {SEARCH_ROW_MASK} FROM {table}_search WHERE {table}_search MATCH "
            ));
            // The query's keys, as the search triggers of migration 0025 index a name under them
            // (the workspace's rowid, `x`, four bytes of the UTF-8 in hex), as a phrase in order:
            // it matches where the query is a substring of a name. A query of three bytes is the
            // prefix of a key instead: of the keys it begins, and of a name's last three bytes.
            let (last_start, prefix) = match folded.len() {
                3 => (1, " *"),
                length => (length as i64 - 3, ""),
            };
            qb.push("(SELECT '\"' || coalesce(group_concat(w.rowid || 'x' || hex(substr(");
            qb.push_bind(folded.as_bytes().to_vec());
            qb.push(format!(
                ", s.n, 4)), ' ' ORDER BY s.n), '') || '\"{prefix}' FROM workspaces w, search_trigram_starts s WHERE w.id = "
            ));
            qb.push_bind(ws.to_string());
            qb.push(" AND s.n <= ");
            qb.push_bind(last_start);
            qb.push(")");
            qb.push(format!(
                " AND rowid BETWEEN (SELECT rowid << {SEARCH_ROWID_SHIFT} FROM workspaces WHERE id = "
            ));
            qb.push_bind(ws.to_string());
            qb.push(format!(
                ") AND (SELECT (rowid << {SEARCH_ROWID_SHIFT}) | {SEARCH_ROW_MASK} FROM workspaces WHERE id = "
            ));
            qb.push_bind(ws.to_string());
            qb.push("))");
        } else {
            qb.push(format!("{alias}.name_folded LIKE "));
            qb.push_bind(format!("%{}%", crate::like_escape(folded)));
            qb.push(" ESCAPE '\\'");
        }
    }

    /// The workspace column a scoped query compares. When the search index finds the name matches,
    /// the unary `+` keeps the planner from walking the workspace's index instead: a name search
    /// counts every match anyway, and without statistics SQLite would walk the whole workspace and
    /// probe each row (8 ms instead of under 1 ms at 100,000 files, 100 matches).
    fn workspace_column(alias: &str, name_query: Option<&str>) -> String {
        match name_query {
            Some(folded) if served_by_name_keys(folded) => format!("+{alias}.workspace_id"),
            _ => format!("{alias}.workspace_id"),
        }
    }

    fn fetch_built<'e, T, E>(
        qb: &'e mut sqlx::QueryBuilder<'static, sqlx::Sqlite>,
        executor: E,
    ) -> impl Future<Output = sqlx::Result<Vec<T>>> + Send + 'e
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow> + Send + Unpin + 'e,
        E: sqlx::Executor<'e, Database = sqlx::Sqlite> + 'e,
    {
        qb.build_query_as().fetch_all(executor)
    }

    fn execute_built<'e, E>(
        qb: &'e mut sqlx::QueryBuilder<'static, sqlx::Sqlite>,
        executor: E,
    ) -> impl Future<Output = sqlx::Result<()>> + Send + 'e
    where
        E: sqlx::Executor<'e, Database = sqlx::Sqlite> + 'e,
    {
        let query = qb.build();
        async move { query.execute(executor).await.map(drop) }
    }

    fn rows_affected(done: &sqlx::sqlite::SqliteQueryResult) -> u64 {
        done.rows_affected()
    }

    fn inline_rows<T: InlineRow>(&self, sql: &str, params: &[&str]) -> Option<Result<Vec<T>>> {
        self.read_inline(sql, params, T::from_rusqlite)
    }

    fn cache(&self) -> Option<&Arc<ReadCache>> {
        self.cache.as_ref()
    }

    fn in_request_scope<'a>(&'a self, request: BoxFuture<'a, ()>) -> BoxFuture<'a, ()> {
        match self.inline {
            Some(_) => Box::pin(REQUEST_READS.scope(RequestReads::default(), request)),
            None => request,
        }
    }
}

#[cfg(test)]
mod tests {
    use cabinet_core::listing::FileFilter;
    use cabinet_core::{
        ApiKey, ApiKeyId, FolderStore, KeyStore, Role, Workspace, WorkspaceId, WorkspaceStore,
    };
    use chrono::Utc;
    use sqlx::Connection;

    use super::*;

    async fn store_with_key(url: &str) -> (SqliteStore, ApiKey) {
        let store = SqliteStore::open(url).await.unwrap();
        let ws = Workspace {
            id: WorkspaceId::generate(),
            name: "inline".into(),
            limit_bytes: None,
            max_file_bytes: None,
            used_bytes: 0,
            reserved_bytes: 0,
            created_at: Utc::now(),
        };
        store.create_workspace(&ws).await.unwrap();
        let key = ApiKey {
            id: ApiKeyId::generate(),
            name: None,
            role: Role::Admin,
            workspaces: vec![ws.id],
            hint: "wxyz".into(),
            created_at: Utc::now(),
            revoked_at: None,
        };
        store.create_api_key(&key, "hash").await.unwrap();
        (store, key)
    }

    #[tokio::test]
    async fn a_database_in_a_file_answers_lookups_inline_and_sees_every_commit_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let (store, key) = store_with_key(&format!("sqlite://{}", dir.path().join("m.db").display())).await;
        let decode = crate::rows::ApiKeyWorkspaceRow::from_rusqlite;
        let inline = store.db.read_inline(crate::queries::FIND_API_KEY, &["hash"], decode);
        assert_eq!(inline.expect("answered inline").unwrap().len(), 1);
        assert_eq!(store.find_api_key("hash").await.unwrap().map(|found| found.id), Some(key.id.clone()));
        // A revocation committed by the writer is what the next inline lookup sees.
        let revoked_at = Utc::now();
        store.revoke_api_key(&key.id, revoked_at).await.unwrap();
        let found = store.find_api_key("hash").await.unwrap().unwrap();
        assert_eq!(found.revoked_at.map(|at| at.timestamp_millis()), Some(revoked_at.timestamp_millis()));
    }

    /// Revokes the key through a second store on the same file, as another process would.
    async fn revoke_elsewhere(elsewhere: &SqliteStore, key: &ApiKey) {
        elsewhere.revoke_api_key(&key.id, Utc::now()).await.unwrap();
    }

    async fn revoked(store: &SqliteStore) -> bool {
        store.find_api_key("hash").await.unwrap().unwrap().revoked_at.is_some()
    }

    #[tokio::test]
    async fn a_requests_lookups_share_one_snapshot_until_it_touches_the_pools() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("m.db").display());
        let (store, key) = store_with_key(&url).await;
        let elsewhere = SqliteStore::open(&url).await.unwrap();
        let scoped = store.clone();
        let request = async move {
            let store = scoped;
            assert!(!revoked(&store).await);
            revoke_elsewhere(&elsewhere, &key).await;
            // The request's next lookup reads where its first one did: one lock round for both.
            assert!(!revoked(&store).await, "the lookups did not share their read");
            // Anything through the pools ends the shared read; what follows reads afresh.
            store.list_workspaces().await.unwrap();
            assert!(revoked(&store).await);
        };
        cabinet_core::MetadataStore::in_request_scope(&store, Box::pin(request)).await;
        // No connection is kept by a request that has ended.
        let inline = store.db.inline.as_ref().unwrap();
        assert_eq!(inline.idle.lock().unwrap().len(), inline.opened.load(Ordering::Relaxed));
    }

    #[tokio::test]
    async fn a_requests_kept_lookups_read_the_mark_of_commits_once_until_it_touches_the_pools() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("m.db").display());
        let (store, _) = store_with_key(&url).await;
        assert!(!revoked(&store).await);
        assert!(store.db.cache.as_ref().unwrap().keeps_key("hash"), "the key is kept");
        let other = another_connection(&url);
        let scoped = store.clone();
        let request = async move {
            let store = scoped;
            // Kept: the lookup reads the mark of commits, and no read transaction begins.
            assert!(!revoked(&store).await);
            other.execute("UPDATE api_keys SET revoked_at = 1", []).unwrap();
            assert!(!revoked(&store).await, "the request's second lookup read the mark again");
            store.list_workspaces().await.unwrap();
            assert!(revoked(&store).await, "after the pools, the mark is read afresh");
            other.execute("UPDATE api_keys SET revoked_at = NULL", []).unwrap();
        };
        cabinet_core::MetadataStore::in_request_scope(&store, Box::pin(request)).await;
        let scoped = store.clone();
        let next = async move { assert!(!revoked(&scoped).await, "the next request reads the mark afresh") };
        cabinet_core::MetadataStore::in_request_scope(&store, Box::pin(next)).await;
    }

    #[tokio::test]
    async fn a_request_sees_its_own_writes_and_the_next_request_reads_afresh() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("m.db").display());
        let (store, key) = store_with_key(&url).await;
        let (scoped, key_) = (store.clone(), key.clone());
        let own_write = async move {
            let (store, key) = (scoped, key_);
            assert!(!revoked(&store).await);
            store.revoke_api_key(&key.id, Utc::now()).await.unwrap();
            assert!(revoked(&store).await, "a request's reads after its write see the write");
        };
        cabinet_core::MetadataStore::in_request_scope(&store, Box::pin(own_write)).await;

        let (store, key) = store_with_key(&format!("sqlite://{}", dir.path().join("n.db").display())).await;
        let url = format!("sqlite://{}", dir.path().join("n.db").display());
        let scoped = store.clone();
        let first = async move { assert!(!revoked(&scoped).await) };
        cabinet_core::MetadataStore::in_request_scope(&store, Box::pin(first)).await;
        revoke_elsewhere(&SqliteStore::open(&url).await.unwrap(), &key).await;
        let scoped = store.clone();
        let second = async move { assert!(revoked(&scoped).await, "a request's read began before it") };
        cabinet_core::MetadataStore::in_request_scope(&store, Box::pin(second)).await;
    }

    /// A connection of its own to the database at `url`, as another process would hold.
    fn another_connection(url: &str) -> rusqlite::Connection {
        rusqlite::Connection::open(url.trim_start_matches("sqlite://")).unwrap()
    }

    #[tokio::test]
    async fn the_wal_index_marks_every_commit_of_any_connection_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("m.db").display());
        let (store, _) = store_with_key(&url).await;
        let index = store.db.inline.as_ref().unwrap().wal_index.as_ref().expect("the WAL index is read");
        let other = another_connection(&url);
        let mut marks = vec![index.state().expect("a mark")];
        // Reads change nothing.
        store.find_api_key("hash").await.unwrap();
        other.query_row("SELECT count(*) FROM api_keys", [], |_| Ok(())).unwrap();
        assert_eq!(index.state(), Some(marks[0]));
        for round in 0..3 {
            other.execute("UPDATE api_keys SET name = ?1", [format!("round {round}")]).unwrap();
            marks.push(index.state().expect("a mark"));
        }
        // A checkpoint that empties the WAL: the next commit starts it again, and is marked anew.
        other.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).unwrap();
        other.execute("UPDATE api_keys SET name = 'after the checkpoint'", []).unwrap();
        marks.push(index.state().expect("a mark"));
        let distinct: std::collections::HashSet<_> = marks.iter().collect();
        assert_eq!(distinct.len(), marks.len(), "every commit has a mark of its own: {marks:x?}");
    }

    /// A store on a fresh database file in `dir`, with a table to fill the WAL with.
    async fn store_to_fill(dir: &Path) -> SqliteStore {
        let (store, _) = store_with_key(&format!("sqlite://{}", dir.join("m.db").display())).await;
        sqlx::query("CREATE TABLE filler (bytes BLOB)").execute(&store.db.write).await.unwrap();
        store
    }

    /// Commits `rows` rows of 3,000 bytes, about a WAL frame each.
    async fn fill(store: &SqliteStore, rows: u32) {
        sqlx::query(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $1) \
             INSERT INTO filler SELECT randomblob(3000) FROM n",
        )
        .bind(rows)
        .execute(&store.db.write)
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn a_checkpointer_of_its_own_copies_the_wal_ahead_of_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_to_fill(dir.path()).await;
        // ~600 frames: past the checkpointer's 250, short of the 1,000 at which the writer copies.
        fill(&store, 600).await;
        let index = store.db.inline.as_ref().unwrap().wal_index.as_ref().expect("the WAL index is read");
        let copied = || index.header().expect("a header").copied;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while copied() < 600 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(copied() >= 600, "the checkpointer copied {} frames of the commit's ~600", copied());
    }

    #[tokio::test]
    async fn the_wal_starts_again_from_its_first_frame_under_a_writer_that_never_stops() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_to_fill(dir.path()).await;
        let index = store.db.inline.as_ref().unwrap().wal_index.as_ref().expect("the WAL index is read");
        let first_salt = index.header().unwrap().salt;
        // ~4,000 frames in commits of five, one after the other, while the checkpointer copies.
        for _ in 0..800 {
            fill(&store, 5).await;
        }
        assert_ne!(index.header().unwrap().salt, first_salt, "the WAL was started again");
        let wal_bytes = std::fs::metadata(dir.path().join("m.db-wal")).unwrap().len();
        // 4,096-byte pages and a 24-byte header a frame: the writer's 1,000, and what is committed
        // while a checkpoint of the other thread keeps the writer's from running; the ~4,000 of a
        // WAL that is never started again are far past it.
        assert!(wal_bytes < 2_000 * 4_120, "the WAL grew to {wal_bytes} bytes");
    }

    #[tokio::test]
    async fn a_kept_key_is_used_until_anything_commits_whoever_commits_it() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("m.db").display());
        let (store, key) = store_with_key(&url).await;
        let cache = store.db.cache.as_ref().expect("a database in a file keeps what it reads");
        assert_eq!(store.find_api_key("hash").await.unwrap().map(|found| found.id), Some(key.id.clone()));
        assert!(cache.keeps_key("hash"), "the key is kept");
        assert!(!revoked(&store).await);

        // A commit of another connection, to anything: nothing kept is used after it.
        let other = another_connection(&url);
        other.execute("UPDATE workspaces SET name = 'renamed'", []).unwrap();
        assert!(!cache.keeps_key("hash"), "what was kept is forgotten once anything commits");
        assert!(!revoked(&store).await);
        assert!(cache.keeps_key("hash"), "read again, and kept again");
        // A revocation by another connection is seen by the next lookup.
        other.execute("UPDATE api_keys SET revoked_at = 1", []).unwrap();
        assert!(revoked(&store).await, "a key revoked elsewhere is refused at once");
        // And by this store's own writer.
        other.execute("UPDATE api_keys SET revoked_at = NULL", []).unwrap();
        assert!(!revoked(&store).await);
        store.revoke_api_key(&key.id, Utc::now()).await.unwrap();
        assert!(revoked(&store).await);
    }

    #[tokio::test]
    async fn the_key_lookup_reads_its_workspaces_in_index_order_without_sorting() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = store_with_key(&format!("sqlite://{}", dir.path().join("m.db").display())).await;
        let sql = format!("EXPLAIN QUERY PLAN {}", crate::queries::FIND_API_KEY);
        let plan = store.db.read_inline(&sql, &["hash"], |row| row.get::<_, String>(3));
        let plan = plan.expect("answered inline").unwrap().join("\n");
        assert!(plan.contains("api_key_workspaces_in_order"), "{plan}");
        assert!(!plan.contains("TEMP B-TREE"), "{plan}");
    }

    /// The query plan's lines for a files query with `filter`, as workspace `ws`.
    async fn file_query_plan(store: &SqliteStore, ws: &WorkspaceId, filter: &FileFilter) -> String {
        let mut query = sqlx::QueryBuilder::new("EXPLAIN QUERY PLAN SELECT f.id FROM files f");
        SqliteStore::push_file_filter(&mut query, ws, filter, crate::queries::NameMatched::NotYet);
        let rows: Vec<(i64, i64, i64, String)> =
            query.build_query_as().fetch_all(store.read_pool()).await.unwrap();
        rows.into_iter().map(|(_, _, _, detail)| detail).collect::<Vec<_>>().join("\n")
    }

    /// How many names in `workspace`'s range of the files' search index hold `term`, searched by
    /// `workspace`'s keys as a search builds the match (`push_name_match`).
    async fn names_in_range(store: &SqliteStore, workspace: &WorkspaceId, term: &str) -> i64 {
        assert!(served_by_name_keys(term), "{term} is matched through the search index");
        let mut query = sqlx::QueryBuilder::new("SELECT COUNT(*) FROM files f WHERE ");
        SqliteDatabase::push_name_match(&mut query, "files", "f", workspace, term);
        query.build_query_scalar().fetch_one(store.read_pool()).await.unwrap()
    }

    #[tokio::test]
    async fn a_name_search_reads_only_its_workspaces_keys_and_range_of_the_search_index() {
        let dir = tempfile::tempdir().unwrap();
        let (store, key) = store_with_key(&format!("sqlite://{}", dir.path().join("m.db").display())).await;
        let ws = key.workspaces[0].clone();
        let filter = FileFilter { name_contains: Some("quarterly".into()), ..FileFilter::default() };
        let plan = file_query_plan(&store, &ws, &filter).await;
        // FTS5 writes the constraints it was handed after the colon (`0:M1><`): `M` the MATCH,
        // `>` and `<` the rowid range, which it seeks to in every key's list rather than
        // filtering after.
        let index_line = plan.lines().find(|line| line.contains("files_search")).expect("the search index");
        let (_, constraints) = index_line.rsplit_once(':').expect("FTS5's constraints");
        for wanted in ['M', '>', '<'] {
            assert!(constraints.contains(wanted), "{wanted} missing from {index_line}\n{plan}");
        }
        assert!(plan.contains("SEARCH f USING INTEGER PRIMARY KEY (rowid=?)"), "{plan}");

        // The index's rows are numbered within their workspace's range: another workspace's
        // range holds none of this one's names.
        let other = Workspace {
            id: WorkspaceId::generate(),
            name: "other".into(),
            limit_bytes: None,
            max_file_bytes: None,
            used_bytes: 0,
            reserved_bytes: 0,
            created_at: Utc::now(),
        };
        store.create_workspace(&other).await.unwrap();
        for (workspace, name) in [(&ws, "Quarterly report.pdf"), (&other.id, "Holiday.jpg")] {
            sqlx::query(
                "INSERT INTO files (workspace_id, id, name, name_folded, mime_type, size, sha256, blob_key, created_at, updated_at) \
                 VALUES ($1, $2, $3, lower($3), 'application/pdf', 1, '', $2, 0, 0)",
            )
            .bind(workspace.to_string())
            .bind(cabinet_core::FileId::generate().to_string())
            .bind(name)
            .execute(store.write_pool())
            .await
            .unwrap();
        }
        assert_eq!(names_in_range(&store, &ws, "quarterly").await, 1);
        assert_eq!(names_in_range(&store, &other.id, "quarterly").await, 0);
        assert_eq!(names_in_range(&store, &other.id, "holiday").await, 1);
        assert_eq!(names_in_range(&store, &ws, "holiday").await, 0);

        // Each name is indexed under its own workspace's keys: none of the keys another
        // workspace's search for the same term looks up is in the index, so that search finds no
        // list to seek through, whatever this workspace holds.
        let mut connection =
            sqlx::SqliteConnection::connect(&format!("sqlite://{}", dir.path().join("m.db").display()))
                .await
                .unwrap();
        sqlx::query("CREATE VIRTUAL TABLE temp.files_search_keys USING fts5vocab(main, files_search, row)")
            .execute(&mut connection)
            .await
            .unwrap();
        let keys_held = |workspace: &WorkspaceId, term: &'static str| {
            sqlx::query_scalar::<_, i64>(
                "SELECT COUNT(*) FROM temp.files_search_keys WHERE term IN \
                 (SELECT lower(w.rowid || 'x' || hex(substr(CAST($2 AS BLOB), s.n, 4))) FROM workspaces w, \
                  search_trigram_starts s WHERE w.id = $1 AND s.n <= length(CAST($2 AS BLOB)) - 3)",
            )
            .bind(workspace.to_string())
            .bind(term)
        };
        assert_eq!(keys_held(&ws, "quarterly").fetch_one(&mut connection).await.unwrap(), 6);
        assert_eq!(keys_held(&other.id, "quarterly").fetch_one(&mut connection).await.unwrap(), 0);
        assert_eq!(keys_held(&other.id, "holiday").fetch_one(&mut connection).await.unwrap(), 4);
        assert_eq!(keys_held(&ws, "holiday").fetch_one(&mut connection).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn an_in_memory_database_answers_through_the_pool() {
        let (store, key) = store_with_key("sqlite::memory:").await;
        assert!(store.db.inline.is_none());
        assert_eq!(store.find_api_key("hash").await.unwrap().map(|found| found.id), Some(key.id));
    }

    #[tokio::test]
    async fn lookups_beyond_the_inline_connections_go_through_the_pool() {
        let dir = tempfile::tempdir().unwrap();
        let (store, key) = store_with_key(&format!("sqlite://{}", dir.path().join("m.db").display())).await;
        let inline = store.db.inline.as_ref().unwrap();
        let held: Vec<_> = (0..MAX_INLINE_CONNECTIONS).map(|_| inline.connection().unwrap()).collect();
        let decode = |row: &rusqlite::Row<'_>| row.get::<_, String>(0);
        assert!(store.db.read_inline("SELECT hint FROM api_keys", &[], decode).is_none());
        assert_eq!(store.find_api_key("hash").await.unwrap().map(|found| found.id), Some(key.id));
        inline.idle.lock().unwrap().extend(held);
        let hints = store.db.read_inline("SELECT hint FROM api_keys", &[], decode);
        assert_eq!(hints.expect("a returned connection serves again").unwrap(), vec!["wxyz".to_owned()]);
    }

    /// Names folded by an older `fold` (lowercase only) are folded anew when the store next opens:
    /// search and sibling checks find them in the new form, and two live siblings that now fold
    /// alike both keep their names (and the second its old form) rather than failing the start.
    #[tokio::test]
    async fn the_names_migration_folds_old_names_anew() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("m.db").display());
        let (store, key) = store_with_key(&url).await;
        let ws = key.workspaces[0].clone();
        let folder = |name: &str| cabinet_core::Folder {
            workspace_id: ws.clone(),
            id: cabinet_core::FolderId::generate(),
            parent_id: None,
            name: name.to_owned(),
            is_favorite: false,
            is_shared: false,
            trashed_at: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        };
        let (heart, wide, plain) = (folder("\u{2764}\u{fe0f} love"), folder("\u{ff21}bc"), folder("abc"));
        // What the older version stored, and a database from before the migration.
        for made in [&heart, &wide] {
            store.insert_folder(made).await.unwrap();
            sqlx::query("UPDATE folders SET name_folded = ? WHERE id = ?")
                .bind(made.name.to_lowercase())
                .bind(made.id.as_str())
                .execute(store.write_pool())
                .await
                .unwrap();
        }
        store.insert_folder(&plain).await.unwrap();
        sqlx::query("DELETE FROM cabinet_migrations WHERE version = ?")
            .bind(crate::NAMES_REFOLDED_MIGRATION)
            .execute(store.write_pool())
            .await
            .unwrap();
        drop(store);
        let reopened = SqliteStore::open(&url).await.unwrap();
        let folded: Vec<(String, String)> =
            sqlx::query_as("SELECT id, name_folded FROM folders ORDER BY name")
                .fetch_all(reopened.write_pool())
                .await
                .unwrap();
        let of =
            |id: &cabinet_core::FolderId| folded.iter().find(|(f, _)| f == id.as_str()).unwrap().1.clone();
        assert_eq!(of(&heart.id), "\u{2764} love", "the variation selector is dropped");
        assert_eq!(of(&plain.id), "abc");
        assert_eq!(of(&wide.id), "\u{ff41}bc", "would clash with its sibling `abc`: keeps its old form");
    }
}

/// A file's object as a database names it: where it is, and what its bytes hash to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    pub key: String,
    pub sha256: String,
    pub size: u64,
}

/// The database file a `sqlite://` URL (or a path) names.
pub fn database_path(url: &str) -> Result<PathBuf> {
    Ok(connect_options(url)?.get_filename().to_owned())
}

/// The connection options a `sqlite://` URL (or a plain path) stands for.
fn connect_options(url: &str) -> Result<SqliteConnectOptions> {
    if url.starts_with("sqlite:") {
        SqliteConnectOptions::from_str(url)
            .map_err(|err| Error::bad_request(Code::InvalidDatabaseUrl, err.to_string()))
    } else {
        Ok(SqliteConnectOptions::new().filename(url))
    }
}

/// Copies the live database at `from` to `to` with SQLite's online backup, in one step: a
/// consistent snapshot (page for page, so rowids and the search index stay as they are) while
/// the server goes on writing, which WAL readers never block. Blocking: run it off the runtime.
pub fn snapshot(from: &Path, to: &Path) -> Result<()> {
    let failed = |what: &str, err: rusqlite::Error| Error::internal(format!("{what}: {err}"));
    let source = rusqlite::Connection::open_with_flags(from, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|err| failed("opening the database to back up", err))?;
    source.busy_timeout(Duration::from_secs(30)).map_err(|err| failed("setting a busy timeout", err))?;
    let mut copy = rusqlite::Connection::open(to).map_err(|err| failed("creating the copy", err))?;
    {
        let backup = rusqlite::backup::Backup::new(&source, &mut copy)
            .map_err(|err| failed("starting the backup", err))?;
        // -1: every page in one step, under one read transaction.
        match backup.step(-1).map_err(|err| failed("copying the database", err))? {
            rusqlite::backup::StepResult::Done => {}
            other => return Err(Error::internal(format!("the database copy stopped short: {other:?}"))),
        }
    }
    // The copy is a plain database file, not WAL: it stands alone, one file.
    copy.pragma_update(None, "journal_mode", "DELETE").map_err(|err| failed("finishing the copy", err))?;
    Ok(())
}

/// Every file's object in the database at `path` (a snapshot), trashed files included: their
/// objects are kept until they are purged.
pub fn stored_objects(path: &Path) -> Result<Vec<StoredObject>> {
    let failed = |err: rusqlite::Error| Error::internal(format!("reading the snapshot's files: {err}"));
    let db = rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(failed)?;
    let mut query =
        db.prepare("SELECT blob_key, sha256, size FROM files ORDER BY blob_key").map_err(failed)?;
    let rows = query
        .query_map([], |row| {
            Ok(StoredObject {
                key: row.get(0)?,
                sha256: row.get(1)?,
                size: row.get::<_, i64>(2)?.max(0) as u64,
            })
        })
        .map_err(failed)?;
    rows.collect::<rusqlite::Result<Vec<_>>>().map_err(failed)
}
