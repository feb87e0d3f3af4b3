//! List and name search in one large workspace, through Cabinet's HTTP API against the raw
//! indexed query on the same database. The workspace is seeded straight into the database after
//! Cabinet has migrated it (one `INSERT … SELECT` per step: the SQLite search index follows by its
//! triggers, PostgreSQL's trigram-key index by itself), and grown step by step: 10k, 100k, 1M.
//!
//! Names look like `Photo 1234 w0042.jpg`; the term `w0042` is in one name in a thousand, so a
//! search returns a page of the newest matches out of N/1000.
//!
//! Beside it, a neighbour workspace of [`NEIGHBOUR_FILES`] files (`Scan 1234 v0042.png`: never the
//! term) searches for the term only the large one has, at every size. Its twin, the same workspace
//! with the same files on a second server of its own whose database holds nothing else, is searched
//! in turns with it (blocks of [`NEIGHBOUR_BLOCK`] requests): the ratio of their medians is what the
//! large workspace's names cost another tenant's search, and must stay near 1 (a larger one would
//! also tell the neighbour the term exists). Taken in turns, the two see the same machine; a
//! baseline taken once before seeding met whatever the shared machine did minutes earlier.

use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{PgPool, SqlitePool};

use crate::client;
use crate::processes::{admin, Cabinet};
use crate::stats::{Row, Samples, Target};
use crate::Bench;

const TERM: &str = "w0042";
const SHA: &str = "0000000000000000000000000000000000000000000000000000000000000000";
const BASE_MILLIS: i64 = 1_700_000_000_000;
/// The most files seeded in one transaction.
const SEED_STEP: u64 = 1_000_000;
/// The files of the neighbour workspace, whose search for the term must not slow with the other's.
const NEIGHBOUR_FILES: u64 = 1_000;
/// How many searches the neighbour and its twin each make in a turn.
const NEIGHBOUR_BLOCK: usize = 10;

enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Db {
    /// The database a server on `data` uses: PostgreSQL at `postgres`, or its own SQLite file.
    async fn connect(data: &std::path::Path, postgres: Option<&str>) -> Result<Self> {
        Ok(match postgres {
            Some(url) => Db::Postgres(PgPoolOptions::new().max_connections(1).connect(url).await?),
            None => {
                let url = format!("sqlite://{}", data.join("cabinet.db").display());
                // The database file mapped, as Cabinet's reading connections map it.
                let options = SqliteConnectOptions::from_str(&url)?
                    .busy_timeout(Duration::from_secs(30))
                    .pragma("mmap_size", (1u64 << 40).to_string());
                Db::Sqlite(SqlitePoolOptions::new().max_connections(1).connect_with(options).await?)
            }
        })
    }

    async fn close(self) {
        match self {
            Db::Sqlite(pool) => pool.close().await,
            Db::Postgres(pool) => pool.close().await,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Db::Sqlite(_) => "SQLite",
            Db::Postgres(_) => "PostgreSQL",
        }
    }

    /// Adds files `from..=to` to the workspace and charges their bytes to its ledger, named
    /// `{prefix} {i} {letter}{0000-0999}{ext}`.
    async fn seed(&self, ws: &str, from: u64, to: u64, names: Names) -> Result<()> {
        let Names { prefix, letter, ext } = names;
        let bytes = ((to + 1 - from) * 1024) as i64;
        match self {
            Db::Sqlite(pool) => {
                let mut tx = pool.begin().await?;
                sqlx::query(
                    "INSERT INTO files (workspace_id, id, name, name_folded, mime_type, size, sha256, blob_key, created_at, updated_at) \
                     WITH RECURSIVE n(i) AS (SELECT $1 UNION ALL SELECT i + 1 FROM n WHERE i < $2), \
                     named AS (SELECT i, $6 || ' ' || i || ' ' || $7 || printf('%04d', (i * 7919) % 1000) || $8 AS name FROM n) \
                     SELECT $3, 'file_' || printf('%026d', i), name, lower(name), 'image/jpeg', 1024, $4, \
                            $3 || '/seed' || i, $5 + i, $5 + i FROM named",
                )
                .bind(from as i64)
                .bind(to as i64)
                .bind(ws)
                .bind(SHA)
                .bind(BASE_MILLIS)
                .bind(prefix)
                .bind(letter)
                .bind(ext)
                .execute(&mut *tx)
                .await?;
                sqlx::query("UPDATE workspaces SET used_bytes = used_bytes + $1 WHERE id = $2")
                    .bind(bytes)
                    .bind(ws)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
            }
            Db::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                sqlx::query(
                    "INSERT INTO files (workspace_id, id, name, name_folded, mime_type, size, sha256, blob_key, created_at, updated_at) \
                     SELECT $3, 'file_' || lpad(i::text, 26, '0'), name, lower(name), 'image/jpeg', 1024, $4, \
                            $3 || '/seed' || i, $5 + i, $5 + i \
                     FROM (SELECT i, $6 || ' ' || i || ' ' || $7 || lpad(((i * 7919) % 1000)::text, 4, '0') || $8 AS name \
                           FROM generate_series($1::bigint, $2::bigint) AS i) AS named",
                )
                .bind(from as i64)
                .bind(to as i64)
                .bind(ws)
                .bind(SHA)
                .bind(BASE_MILLIS)
                .bind(prefix)
                .bind(letter)
                .bind(ext)
                .execute(&mut *tx)
                .await?;
                sqlx::query("UPDATE workspaces SET used_bytes = used_bytes + $1 WHERE id = $2")
                    .bind(bytes)
                    .bind(ws)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                // What autovacuum does shortly after a bulk load (statistics, and the visibility
                // map the index-only paths need); measured before it has, the figures would time
                // autovacuum competing for the same two cores instead of the queries.
                sqlx::query("VACUUM (ANALYZE) files").execute(pool).await?;
            }
        }
        Ok(())
    }

    /// The raw indexed query for a page of 50, newest first; returns the rows it found.
    async fn raw(&self, ws: &str, term: Option<&str>) -> Result<usize> {
        Ok(match (self, term) {
            (Db::Sqlite(pool), None) => sqlx::query(
                "SELECT id, name FROM files WHERE workspace_id = $1 AND trashed_at IS NULL \
                 ORDER BY created_at DESC, id DESC LIMIT 50",
            )
            .bind(ws)
            .fetch_all(pool)
            .await?
            .len(),
            (Db::Sqlite(pool), Some(term)) => sqlx::query(
                "SELECT id, name FROM files WHERE +workspace_id = $1 AND trashed_at IS NULL \
                 AND rowid IN (SELECT rowid & 274877906943 FROM files_search WHERE files_search MATCH \
                   (SELECT '\"' || group_concat(w.rowid || 'x' || hex(substr(CAST($2 AS BLOB), s.n, 4)), ' ' ORDER BY s.n) \
                    || '\"' FROM workspaces w, search_trigram_starts s WHERE w.id = $1 \
                    AND s.n <= length(CAST($2 AS BLOB)) - 3) \
                   AND rowid BETWEEN (SELECT rowid << 38 FROM workspaces WHERE id = $1) \
                   AND (SELECT (rowid << 38) | 274877906943 FROM workspaces WHERE id = $1)) \
                 ORDER BY created_at DESC, id DESC LIMIT 50",
            )
            .bind(ws)
            .bind(term)
            .fetch_all(pool)
            .await?
            .len(),
            (Db::Postgres(pool), None) => sqlx::query(
                "SELECT id, name FROM files WHERE workspace_id = $1 AND trashed_at IS NULL \
                 ORDER BY created_at DESC, id DESC LIMIT 50",
            )
            .bind(ws)
            .fetch_all(pool)
            .await?
            .len(),
            (Db::Postgres(pool), Some(term)) => sqlx::query(
                "SELECT id, name FROM files WHERE workspace_id = $1 AND trashed_at IS NULL \
                 AND name_trigram_keys(workspace_id, name_folded) @> name_trigram_keys($1, $3) \
                 AND name_folded LIKE $2 ORDER BY created_at DESC, id DESC LIMIT 50",
            )
            .bind(ws)
            .bind(format!("%{term}%"))
            .bind(term)
            .fetch_all(pool)
            .await?
            .len(),
        })
    }
}

/// How seeded files are named: `{prefix} {i} {letter}{0000-0999}{ext}`.
#[derive(Clone, Copy)]
struct Names {
    prefix: &'static str,
    letter: &'static str,
    ext: &'static str,
}

/// The large workspace's names: `w0042` is in one in a thousand.
const PHOTOS: Names = Names { prefix: "Photo", letter: "w", ext: ".jpg" };
/// The neighbour's names, which never hold the term.
const SCANS: Names = Names { prefix: "Scan", letter: "v", ext: ".png" };

/// Where a neighbour workspace's search for the term is asked, and with which key.
struct Searcher {
    url: String,
    key: String,
}

impl Searcher {
    /// Milliseconds of `count` searches, each checked to find nothing.
    async fn search(&self, bench: &Bench, count: usize, samples: &mut Samples) -> Result<()> {
        for _ in 0..count {
            let started = Instant::now();
            let answer = client::expect(bench.http.get(&self.url).bearer_auth(&self.key), 200).await?;
            samples.push(started.elapsed().as_secs_f64() * 1000.0);
            let found = answer["data"].as_array().map_or(0, Vec::len);
            if found != 0 {
                bail!("the neighbour's search for {TERM} found {found} items: it sees another workspace");
            }
        }
        Ok(())
    }
}

/// A new workspace named `name` on the server of `data`, and a read key for it: its id and the
/// key's secret.
fn workspace_with_read_key(
    bench: &Bench,
    data: &std::path::Path,
    database_url: Option<&str>,
    name: &str,
) -> Result<(String, String)> {
    let ws = admin(&bench.cabinet_bin, data, database_url, &["create-workspace", "--name", name])?;
    let ws = ws["id"].as_str().context("a workspace id")?.to_owned();
    let key =
        admin(&bench.cabinet_bin, data, database_url, &["create-key", "--workspace", &ws, "--role", "read"])?;
    let key = key["key"].as_str().context("a key secret")?.to_owned();
    Ok((ws, key))
}

/// The neighbour workspace on `server`, made with its files: where its search is asked.
async fn neighbour_on(
    bench: &Bench,
    server: &Cabinet,
    data: &std::path::Path,
    database_url: Option<&str>,
    db: &Db,
) -> Result<Searcher> {
    let (ws, key) = workspace_with_read_key(bench, data, database_url, "neighbour")?;
    db.seed(&ws, 1, NEIGHBOUR_FILES, SCANS).await?;
    Ok(Searcher { url: server.at(&format!("/v1/search?q={TERM}&limit=50")), key })
}

/// `iterations` searches each by the neighbour beside the large workspace and by its twin on a
/// server of its own, in turns of `NEIGHBOUR_BLOCK` (after a turn each unmeasured).
async fn neighbour_searches(
    bench: &Bench,
    beside: &Searcher,
    alone: &Searcher,
    iterations: usize,
) -> Result<(Samples, Samples)> {
    let mut warm_up = Samples::default();
    beside.search(bench, NEIGHBOUR_BLOCK, &mut warm_up).await?;
    alone.search(bench, NEIGHBOUR_BLOCK, &mut warm_up).await?;
    let (mut beside_ms, mut alone_ms) = (Samples::default(), Samples::default());
    for turn in 0..iterations.div_ceil(NEIGHBOUR_BLOCK) {
        // Alternate who goes first, so a drift within a turn hits both alike.
        if turn % 2 == 0 {
            beside.search(bench, NEIGHBOUR_BLOCK, &mut beside_ms).await?;
            alone.search(bench, NEIGHBOUR_BLOCK, &mut alone_ms).await?;
        } else {
            alone.search(bench, NEIGHBOUR_BLOCK, &mut alone_ms).await?;
            beside.search(bench, NEIGHBOUR_BLOCK, &mut beside_ms).await?;
        }
    }
    Ok((beside_ms, alone_ms))
}

/// The neighbour's twin: the same workspace and files on a server and database of their own.
struct Twin {
    server: Cabinet,
    searcher: Searcher,
    db: Db,
    data: std::path::PathBuf,
    /// On PostgreSQL, the database made for it (dropped at the end) and where to drop it from.
    postgres_database: Option<(String, PgPool)>,
}

impl Twin {
    async fn start(bench: &Bench, postgres: Option<&str>) -> Result<Self> {
        let data = bench.path(if postgres.is_some() {
            "cabinet-scale-pg-twin"
        } else {
            "cabinet-scale-sqlite-twin"
        });
        let (database_url, postgres_database) = match postgres {
            Some(url) => {
                let name = format!("cabinet_scale_twin_{}", std::process::id());
                let admin_pool = PgPoolOptions::new().max_connections(1).connect(url).await?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name}")).execute(&admin_pool).await?;
                sqlx::query(&format!("CREATE DATABASE {name}")).execute(&admin_pool).await?;
                (Some(with_database(url, &name)?), Some((name, admin_pool)))
            }
            None => (None, None),
        };
        let extra: Vec<&str> = database_url.iter().flat_map(|url| ["--database-url", url.as_str()]).collect();
        let server = Cabinet::start(&bench.cabinet_bin, &data, &extra)?;
        let db = Db::connect(&data, database_url.as_deref()).await?;
        let searcher = neighbour_on(bench, &server, &data, database_url.as_deref(), &db).await?;
        Ok(Self { server, searcher, db, data, postgres_database })
    }

    async fn remove(self) -> Result<()> {
        drop(self.server);
        self.db.close().await;
        if let Some((name, admin_pool)) = self.postgres_database {
            sqlx::query(&format!("DROP DATABASE IF EXISTS {name}")).execute(&admin_pool).await?;
            admin_pool.close().await;
        }
        std::fs::remove_dir_all(&self.data)?;
        Ok(())
    }
}

/// `url` with its database name replaced by `name`.
fn with_database(url: &str, name: &str) -> Result<String> {
    let (before_query, query) = url.split_once('?').map_or((url, None), |(base, query)| (base, Some(query)));
    let authority_start = before_query.find("://").context("a PostgreSQL URL")? + 3;
    let base = match before_query[authority_start..].find('/') {
        Some(slash) => &before_query[..authority_start + slash],
        None => before_query,
    };
    Ok(match query {
        Some(query) => format!("{base}/{name}?{query}"),
        None => format!("{base}/{name}"),
    })
}

/// One query, through Cabinet and raw.
struct Query {
    label: &'static str,
    path: String,
    raw_term: Option<&'static str>,
    target_ms: f64,
}

pub async fn run(
    bench: &mut Bench,
    sizes: &[u64],
    postgres: Option<&str>,
    assert_ms: Option<f64>,
) -> Result<()> {
    let data = bench.path(if postgres.is_some() { "cabinet-scale-pg" } else { "cabinet-scale-sqlite" });
    let mut extra = Vec::new();
    if let Some(url) = postgres {
        extra = vec!["--database-url", url];
    }
    let cabinet = Cabinet::start(&bench.cabinet_bin, &data, &extra)?;
    let (ws, key) = workspace_with_read_key(bench, &data, postgres, "scale")?;
    let db = Db::connect(&data, postgres).await?;
    let queries = [
        Query {
            label: "list 50 (`GET /v1/files?limit=50`)",
            path: "/v1/files?limit=50".into(),
            raw_term: None,
            target_ms: 5.0,
        },
        Query {
            label: "name search (`GET /v1/files?q=…&limit=50`)",
            path: format!("/v1/files?q={TERM}&limit=50"),
            raw_term: Some(TERM),
            target_ms: 20.0,
        },
        Query {
            label: "search (`GET /v1/search?q=…&limit=50`)",
            path: format!("/v1/search?q={TERM}&limit=50"),
            raw_term: Some(TERM),
            target_ms: 20.0,
        },
    ];
    let iterations = if bench.quick { 30 } else { 200 };
    let beside = neighbour_on(bench, &cabinet, &data, postgres, &db).await?;
    let twin = Twin::start(bench, postgres).await?;
    let mut seeded = 0u64;
    let mut failures = Vec::new();
    for &size in sizes {
        if size > seeded {
            let started = Instant::now();
            // In steps, each a transaction of its own: one of ten million rows would hold them all
            // in the write-ahead log (SQLite) until it commits, twice the database on disk.
            let mut from = seeded + 1;
            while from <= size {
                let to = (from + SEED_STEP - 1).min(size);
                db.seed(&ws, from, to, PHOTOS).await?;
                from = to + 1;
            }
            eprintln!(
                "scale ({}): seeded {} files in {:.1} s",
                db.name(),
                size - seeded,
                started.elapsed().as_secs_f64()
            );
            seeded = size;
        }
        for query in &queries {
            let url = cabinet.at(&query.path);
            let expected =
                if query.raw_term.is_some() { (size / 1000).min(50) } else { size.min(50) } as usize;
            let (mut ours, mut raw) = (Samples::default(), Samples::default());
            for i in 0..(iterations + 5) {
                let started = Instant::now();
                let answer = client::expect(bench.http.get(&url).bearer_auth(&key), 200).await?;
                let ours_ms = started.elapsed().as_secs_f64() * 1000.0;
                let started = Instant::now();
                let rows = db.raw(&ws, query.raw_term).await?;
                let raw_ms = started.elapsed().as_secs_f64() * 1000.0;
                let got = answer["data"].as_array().map_or(0, Vec::len);
                if got < expected.min(rows) || rows < expected {
                    bail!(
                        "{} at {size}: Cabinet returned {got} items, raw {rows}, expected {expected}",
                        query.label
                    );
                }
                if i >= 5 {
                    ours.push(ours_ms);
                    raw.push(raw_ms);
                }
            }
            let (p50, p95, p99) = (ours.median(), ours.percentile(95.0), ours.percentile(99.0));
            eprintln!(
                "scale ({}, {size}): {}: Cabinet p50 {p50:.2} p95 {p95:.2} p99 {p99:.2} ms; raw p50 {:.2} p99 {:.2} ms",
                db.name(),
                query.label,
                raw.median(),
                raw.percentile(99.0)
            );
            if let Some(limit) = assert_ms {
                if p50 >= limit {
                    failures.push(format!(
                        "{} at {size} on {}: median {p50:.2} ms ≥ {limit} ms",
                        query.label,
                        db.name()
                    ));
                }
            }
            let mut judged = Samples::default();
            judged.push(p99);
            bench.rows.push(Row {
                figure: format!("{} at {size} files, {} (p99 ms)", query.label, db.name()),
                cabinet: format!("p50 {p50:.2} / p99 {p99:.2} ms (×{:.1} raw p50)", p50 / raw.median()),
                baseline: format!(
                    "raw indexed query p50 {:.2} / p99 {:.2} ms",
                    raw.median(),
                    raw.percentile(99.0)
                ),
                judged,
                judged_digits: 2,
                target: Target::Below(query.target_ms),
                unit: " ms",
            });
        }
        let (beside, alone) = neighbour_searches(bench, &beside, &twin.searcher, iterations).await?;
        let ratio = beside.median() / alone.median();
        eprintln!(
            "scale ({}, {size}): neighbour's search for a term only the other has: p50 {:.2} ms vs {:.2} ms \
             for its twin on a server of its own, in turns (×{ratio:.2})",
            db.name(),
            beside.median(),
            alone.median()
        );
        let mut judged = Samples::default();
        judged.push(ratio);
        bench.rows.push(Row {
            figure: format!(
                "another workspace's search for a term only this one has, at {size} files, {} (p50 ratio to the same workspace on a server of its own, in turns)",
                db.name()
            ),
            cabinet: format!("p50 {:.2} / p99 {:.2} ms", beside.median(), beside.percentile(99.0)),
            baseline: format!(
                "on a server of its own: p50 {:.2} / p99 {:.2} ms",
                alone.median(),
                alone.percentile(99.0)
            ),
            judged,
            judged_digits: 2,
            target: Target::Below(1.2),
            unit: "×",
        });
    }
    drop(cabinet);
    db.close().await;
    std::fs::remove_dir_all(&data)?;
    twin.remove().await?;
    if !failures.is_empty() {
        bail!("list/search too slow:\n{}", failures.join("\n"));
    }
    Ok(())
}
