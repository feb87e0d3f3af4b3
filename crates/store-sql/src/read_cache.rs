//! What every request would otherwise ask the database, kept in memory so that it costs no query
//! of its own: API keys by the hash of their secret, the standing of end-user tokens, whether a
//! workspace opens reading to the public, and the details of the files read by id (the file and
//! its references, `GET /v1/files/{id}`). Nothing kept is used once a change to it has committed,
//! whoever wrote it (the admin CLI in another process included). How a node learns of changes
//! depends on the database:
//!
//! - **PostgreSQL: notices.** Every change to the rows they are read from notifies
//!   `cabinet_cache` in its own transaction (triggers of migration 0023), and a kept entry is used
//!   only after a round trip on this node's listening connection that began after the request
//!   did. PostgreSQL sends a listener every notice committed before a round trip ahead of its
//!   answer, so by then the notice of any change committed before the request has been read and
//!   what it names forgotten. The round trips are shared: one serves every request waiting when it
//!   starts. When the listening connection is lost (or not yet made) nothing is kept and every
//!   lookup reads the database.
//! - **SQLite: a mark of its commits.** Every commit, by any connection of any process, changes
//!   the mark of the database's state (`CommitCounter`); what is kept is used only while the mark
//!   is what it was before it was read. Any commit at all forgets everything kept, so this pays
//!   where reads outnumber writes; a read of the mark costs a small fraction of the read
//!   transaction it saves.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use cabinet_core::rules::TokenStanding;
use cabinet_core::{ApiKey, FileRecord, FileReference, WorkspaceId};
use sqlx::postgres::{PgListener, PgPoolOptions};
use sqlx::PgPool;
use tokio::sync::{watch, Notify};

/// The channel the triggers notify: with the id of the key or file that changed, or of the
/// workspace whose token revocations, access rules or many files at once did; `*` for everything.
const CHANNEL: &str = "cabinet_cache";
/// The most entries of each kind kept; past it that kind starts again empty.
const CAPACITY: usize = 10_000;
/// The listening session's `application_name`.
const LISTENER_NAME: &str = "cabinet cache listener";
/// How long the listener waits before connecting again after losing its connection.
const RECONNECT_AFTER: Duration = Duration::from_millis(500);
/// How often the listening connection makes a round trip when no request asks for one: notices
/// are read (and their memory freed) and a lost connection is found within this long.
const IDLE_ROUND_TRIP: Duration = Duration::from_secs(1);

tokio::task_local! {
    /// The round trips started when the request being served began (see `in_request_scope`).
    static REQUEST_BEGAN_AFTER: u64;
}

/// A token's standing is asked for by its workspace, minting key and `sub`.
type StandingOf = (String, String, String);

/// A file and what uses it, as its details show them.
pub(crate) type FileDetails = (FileRecord, Vec<FileReference>);

/// A file with more references than this is read each time rather than kept: an entry's memory
/// stays bounded.
const MOST_REFERENCES_KEPT: usize = 64;

/// Reads from the database, kept while nothing has changed them.
pub struct ReadCache {
    state: Mutex<State>,
    changes: Changes,
}

/// How the cache learns that the database changed.
enum Changes {
    /// PostgreSQL's notices, heard on a listening connection.
    Notified(Listener),
    /// SQLite's mark of its commits.
    Counted(Arc<dyn CommitCounter>),
}

/// The connection that hears PostgreSQL's notices, and the round trips made on it.
struct Listener {
    pool: PgPool,
    started: AtomicBool,
    /// Asks the listener for a round trip.
    wanted: Notify,
    /// The number of the last round trip done (or failed).
    done: watch::Sender<u64>,
}

/// Names the committed state of a database, whichever process committed it: two reads of the
/// mark are equal only if what the database holds is the same.
pub(crate) trait CommitCounter: Send + Sync {
    /// The mark now; `None` when it cannot be read, and nothing is kept.
    fn commits(&self) -> Option<u128>;

    /// The mark as the calling request's lookups see it, and whether it was read just now: a
    /// request whose lookups share one view of the database (SQLite's shared read) reads the mark
    /// once, at its first lookup, until that view ends.
    fn request_sees(&self) -> Option<(u128, bool)> {
        self.commits().map(|now| (now, true))
    }

    /// The mark of a state no later than the one the calling request's next read will see, given
    /// the mark `now`: `now` unless the request holds a read transaction open on this database,
    /// which sees the database as it was when it began. `None` when that is not known.
    fn next_read_sees_from(&self, now: u128) -> Option<u128>;
}

impl std::fmt::Debug for ReadCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadCache").finish_non_exhaustive()
    }
}

#[derive(Default)]
struct State {
    /// Whether anything is kept: while PostgreSQL's notices are heard, or SQLite's mark read.
    listening: bool,
    /// On PostgreSQL, moves on with every notice and every start or loss of listening: what was
    /// read from the database before it moved may predate the change a notice announced, and is
    /// not kept. On SQLite, the mark of the state that what is kept was read from.
    epoch: u128,
    /// Round trips started on the listening connection so far.
    round_trips: u64,
    /// By the hash of the secret.
    keys: HashMap<String, ApiKey>,
    standings: HashMap<StandingOf, TokenStanding>,
    /// By workspace: whether any of its rules lets the public read.
    public_read: HashMap<String, bool>,
    /// By the file's id: its details.
    files: HashMap<String, FileDetails>,
}

/// What the cache says.
pub(crate) enum Lookup<T> {
    /// What was read, and nothing changed it since.
    Kept(T),
    /// Read it from the database, then offer it back with this mark; with none (nobody is
    /// listening, or the mark of commits cannot be read) it will not be kept.
    Read(Option<Epoch>),
}

/// When a database read began, as the cache counts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Epoch(u128);

impl ReadCache {
    /// An empty cache of what is read through `pool` from PostgreSQL; it listens from its first
    /// lookup on.
    pub(crate) fn notified(pool: PgPool) -> Self {
        let listener = Listener {
            pool,
            started: AtomicBool::new(false),
            wanted: Notify::new(),
            done: watch::Sender::new(0),
        };
        Self { state: Mutex::default(), changes: Changes::Notified(listener) }
    }

    /// An empty cache of what is read from a database whose commits `counter` marks.
    pub(crate) fn counted(counter: Arc<dyn CommitCounter>) -> Self {
        Self { state: Mutex::default(), changes: Changes::Counted(counter) }
    }

    /// Runs one request's work marked with when it began, so that its lookups share the round
    /// trips started since.
    pub(crate) fn in_request_scope<F: Future>(&self, request: F) -> impl Future<Output = F::Output> {
        REQUEST_BEGAN_AFTER.scope(self.lock().round_trips, request)
    }

    /// The key whose secret hashes to `hash`.
    pub(crate) async fn key(self: &Arc<Self>, hash: &str) -> Lookup<ApiKey> {
        self.lookup(|state| state.keys.get(hash).cloned()).await
    }

    /// Whether the key whose secret hashes to `hash` is kept and would be used now.
    #[cfg(test)]
    pub(crate) fn keeps_key(&self, hash: &str) -> bool {
        let Changes::Counted(counter) = &self.changes else { unreachable!("tests ask SQLite's cache") };
        let state = self.lock();
        state.listening && counter.commits() == Some(state.epoch) && state.keys.contains_key(hash)
    }

    /// Keeps a key read since `read`.
    pub(crate) fn keep_key(&self, read: Epoch, hash: &str, key: &ApiKey) {
        self.keep(read, |state| insert(&mut state.keys, hash.to_owned(), key.clone()));
    }

    /// The standing of the tokens `key_id` minted for `sub` in `workspace`.
    pub(crate) async fn standing(
        self: &Arc<Self>,
        workspace: &str,
        key_id: &str,
        sub: &str,
    ) -> Lookup<TokenStanding> {
        let of = (workspace.to_owned(), key_id.to_owned(), sub.to_owned());
        self.lookup(|state| state.standings.get(&of).cloned()).await
    }

    /// Keeps a token standing read since `read`.
    pub(crate) fn keep_standing(
        &self,
        read: Epoch,
        workspace: &str,
        key_id: &str,
        sub: &str,
        standing: &TokenStanding,
    ) {
        let of = (workspace.to_owned(), key_id.to_owned(), sub.to_owned());
        self.keep(read, |state| insert(&mut state.standings, of, standing.clone()));
    }

    /// Whether any rule of `workspace` lets the public read.
    pub(crate) async fn public_read(self: &Arc<Self>, workspace: &str) -> Lookup<bool> {
        self.lookup(|state| state.public_read.get(workspace).copied()).await
    }

    /// Keeps whether a workspace opens reading to the public, as read since `read`.
    pub(crate) fn keep_public_read(&self, read: Epoch, workspace: &str, public: bool) {
        self.keep(read, |state| insert(&mut state.public_read, workspace.to_owned(), public));
    }

    /// The details of file `id` of `workspace`.
    pub(crate) async fn file_details(self: &Arc<Self>, workspace: &str, id: &str) -> Lookup<FileDetails> {
        self.lookup(|state| {
            state.files.get(id).filter(|(file, _)| file.workspace_id.as_str() == workspace).cloned()
        })
        .await
    }

    /// Keeps a file's details read since `read`.
    pub(crate) fn keep_file_details(&self, read: Epoch, details: &FileDetails) {
        if details.1.len() <= MOST_REFERENCES_KEPT {
            self.keep(read, |state| {
                insert(&mut state.files, details.0.id.as_str().to_owned(), details.clone())
            });
        }
    }

    /// What is kept, once it is known that nothing committed before the request began changed it.
    async fn lookup<T>(self: &Arc<Self>, find: impl Fn(&State) -> Option<T>) -> Lookup<T> {
        match &self.changes {
            Changes::Notified(listener) => self.lookup_notified(listener, find).await,
            Changes::Counted(counter) => self.lookup_counted(&**counter, find),
        }
    }

    /// What is kept, once the notices of everything committed before the request began are read;
    /// starts the listener on first use.
    async fn lookup_notified<T>(
        self: &Arc<Self>,
        listener: &Listener,
        find: impl Fn(&State) -> Option<T>,
    ) -> Lookup<T> {
        if !listener.started.swap(true, Ordering::AcqRel) {
            tokio::spawn(listen(Arc::downgrade(self), listener.pool.clone()));
        }
        let needed = {
            let state = self.lock();
            if !state.listening {
                return Lookup::Read(None);
            }
            if find(&state).is_none() {
                return Lookup::Read(Some(Epoch(state.epoch)));
            }
            // A round trip that started after the request began (outside a request scope: after
            // this lookup began).
            REQUEST_BEGAN_AFTER.try_with(|began| *began).unwrap_or(state.round_trips) + 1
        };
        let mut done = listener.done.subscribe();
        while *done.borrow_and_update() < needed {
            listener.wanted.notify_one();
            if done.changed().await.is_err() {
                return Lookup::Read(None);
            }
        }
        // The notices that round trip read are applied: look again.
        let state = self.lock();
        if !state.listening {
            return Lookup::Read(None);
        }
        match find(&state) {
            Some(value) => Lookup::Kept(value),
            None => Lookup::Read(Some(Epoch(state.epoch))),
        }
    }

    /// What is kept, if it was read from the state the database is in now; what was read from an
    /// earlier one is forgotten first.
    fn lookup_counted<T>(
        &self,
        counter: &dyn CommitCounter,
        find: impl Fn(&State) -> Option<T>,
    ) -> Lookup<T> {
        let Some((now, read_now)) = counter.request_sees() else { return Lookup::Read(None) };
        {
            let mut state = self.lock();
            if !state.listening || state.epoch != now {
                // The mark this request read earlier is not the one what is kept was read at
                // (either may be the older): the request reads the database, in its shared view,
                // and leaves what is kept to the lookups that read the mark afresh.
                if !read_now {
                    drop(state);
                    return Lookup::Read(counter.next_read_sees_from(now).map(Epoch));
                }
                state.clear();
                state.listening = true;
                state.epoch = now;
            }
            if let Some(value) = find(&state) {
                return Lookup::Kept(value);
            }
        }
        Lookup::Read(counter.next_read_sees_from(now).map(Epoch))
    }

    /// Keeps what was read since `read`, unless a change came in between (a notice, a loss of the
    /// listener, a commit).
    fn keep(&self, read: Epoch, insert: impl FnOnce(&mut State)) {
        let unchanged_since_read = match &self.changes {
            Changes::Notified(_) => true,
            Changes::Counted(counter) => counter.commits() == Some(read.0),
        };
        let mut state = self.lock();
        if unchanged_since_read && state.listening && state.epoch == read.0 {
            insert(&mut state);
        }
    }

    /// Forgets what a notice names: a key (and the standing of its tokens), a file's details, or a
    /// workspace's token standings, public reading and files; `*` everything.
    fn forget(&self, id: &str) {
        let mut state = self.lock();
        state.epoch += 1;
        if id == "*" {
            state.clear();
            return;
        }
        state.keys.retain(|_, key| key.id.as_str() != id);
        state.standings.retain(|(workspace, key_id, _), _| workspace != id && key_id != id);
        state.public_read.remove(id);
        // One notice a changed file: the lookup by its id is all it costs. A workspace's notice
        // (a statement that changed many of its files) looks through them all.
        if state.files.remove(id).is_none() && id.starts_with(WorkspaceId::PREFIX) {
            state.files.retain(|_, (file, _)| file.workspace_id.as_str() != id);
        }
    }

    /// Numbers a round trip about to start.
    fn start_round_trip(&self) -> u64 {
        let mut state = self.lock();
        state.round_trips += 1;
        state.round_trips
    }

    fn set_listening(&self, listening: bool) {
        let mut state = self.lock();
        state.epoch += 1;
        state.clear();
        state.listening = listening;
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding it, and a map only ever holds what a notice has not ended.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl State {
    fn clear(&mut self) {
        self.keys.clear();
        self.standings.clear();
        self.public_read.clear();
        self.files.clear();
    }
}

/// Inserts, starting the map again empty when it is full, so that memory stays bounded.
fn insert<K: Hash + Eq, V>(map: &mut HashMap<K, V>, key: K, value: V) {
    if map.len() >= CAPACITY {
        map.clear();
    }
    map.insert(key, value);
}

/// Listens for changes while the cache is in use, connecting again whenever the connection is
/// lost; ends with the cache or the pool.
async fn listen(cache: Weak<ReadCache>, pool: PgPool) {
    // A connection of its own, apart from the pool's and named so an operator can tell it.
    let options = (*pool.connect_options()).clone().application_name(LISTENER_NAME);
    let own = PgPoolOptions::new().max_connections(1).connect_lazy_with(options);
    loop {
        let outcome = listen_once(&cache, &own).await;
        let Some(kept) = cache.upgrade() else { return };
        kept.set_listening(false);
        // Whoever waits for the round trip that failed reads the database instead.
        let failed = kept.start_round_trip();
        if let Changes::Notified(listener) = &kept.changes {
            listener.done.send_replace(failed);
        }
        drop(kept);
        if pool.is_closed() {
            return;
        }
        if let Err(err) = outcome {
            tracing::warn!(error = %err, "not listening for changes: keys, token standings, public reading and file details are read from the database until it listens again");
        }
        tokio::time::sleep(RECONNECT_AFTER).await;
    }
}

/// One connection's life: listens, then makes a round trip whenever a request waits for one (or
/// the connection has been idle a while) and forgets what the notices read on the way name, until
/// the connection fails.
async fn listen_once(cache: &Weak<ReadCache>, pool: &PgPool) -> sqlx::Result<()> {
    let mut listener = PgListener::connect_with(pool).await?;
    // Notices are only read on the round trips below, never by waiting for one on its own: a lost
    // connection fails the round trip, and nothing else reads from it.
    listener.eager_reconnect(false);
    listener.listen(CHANNEL).await?;
    match cache.upgrade() {
        Some(kept) => kept.set_listening(true),
        None => return Ok(()),
    }
    loop {
        let Some(kept) = cache.upgrade() else { return Ok(()) };
        let Changes::Notified(listening) = &kept.changes else { return Ok(()) };
        let _ = tokio::time::timeout(IDLE_ROUND_TRIP, listening.wanted.notified()).await;
        let round_trip = kept.start_round_trip();
        sqlx::query("SELECT 1").execute(&mut listener).await?;
        while let Some(notice) = listener.next_buffered() {
            kept.forget(notice.payload());
        }
        listening.done.send_replace(round_trip);
    }
}
