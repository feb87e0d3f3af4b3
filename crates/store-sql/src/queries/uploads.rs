//! Uploads and the reservations they hold: an upload reserves its size on the quota as it is
//! created, and finishing or failing it turns the reservation into usage or releases it, in one
//! transaction.

use std::collections::HashSet;

use cabinet_core::audit::NewAuditRecord;
use cabinet_core::ports::{Begin, Finish, Reservation};
use cabinet_core::{
    Error, ErrorKind, FailureReason, FileId, FileRecord, Result, Upload, UploadId, UploadStatus, WorkspaceId,
};
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use sqlx::{Acquire, ColumnIndex, Database, Encode, Executor, IntoArguments, QueryBuilder, Row, Type};

use crate::dialect::{Dialect, SqlStore, Value};
use crate::errors::db_error;
use crate::rows::{bytes, millis, UploadRow, UPLOAD_COLUMNS};

/// A workspace's quota ledger as one transaction read it.
struct Ledger {
    limit: Option<i64>,
    used: i64,
    reserved: i64,
}

impl Ledger {
    /// As much of `most` bytes as the quota holds, for an upload already holding `held` of them.
    fn grant(&self, most: i64, held: i64) -> i64 {
        self.limit.map_or(most, |limit| most.min((limit - self.used - self.reserved + held).max(0)))
    }
}

/// Whether charging `bytes` more moves usage past 80, 90 or 100 % of the limit (what
/// `events_quota_crossed` reports).
fn crosses_a_threshold(ledger: &Ledger, bytes: i64) -> bool {
    let Some(limit) = ledger.limit.filter(|limit| *limit > 0) else { return false };
    let (before, after, limit) =
        (i128::from(ledger.used), i128::from(ledger.used) + i128::from(bytes), i128::from(limit));
    [80, 90, 100].iter().any(|percent| before * 100 < limit * percent && after * 100 >= limit * percent)
}

/// The indices of `items` with their workspaces in one order: workspaces' rows are locked in that
/// order, so two nodes' commits never wait on each other.
fn in_workspace_order<T>(items: &[T], workspace_of: impl Fn(&T) -> &WorkspaceId) -> Vec<usize> {
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by(|a, b| workspace_of(&items[*a]).as_str().cmp(workspace_of(&items[*b]).as_str()));
    order
}

/// How a batch written as a whole takes a failed statement: the database away fails them all at
/// once (rather than each after its own wait); any other refusal leaves nothing written (`None`),
/// and the batch is judged one write at a time.
fn refused_as_a_whole<T>(err: Error) -> Result<Option<T>> {
    if err.kind() == ErrorKind::Unavailable {
        return Err(err);
    }
    Ok(None)
}

/// One write of a batch, in the transaction (a savepoint) it is given.
type WriteIn<Db, T, O> = for<'t, 'c> fn(&'t mut sqlx::Transaction<'c, Db>, &'t T) -> BoxFuture<'t, Result<O>>;

impl<D: Dialect> SqlStore<D>
where
    for<'c> &'c mut <D::Db as Database>::Connection: Executor<'c, Database = D::Db>,
    for<'q> <D::Db as Database>::Arguments<'q>: IntoArguments<'q, D::Db>,
    for<'q> &'q str: Encode<'q, D::Db> + Type<D::Db> + ColumnIndex<<D::Db as Database>::Row>,
    usize: ColumnIndex<<D::Db as Database>::Row>,
    i64: Value<D::Db>,
    String: Value<D::Db>,
    bool: Value<D::Db>,
    Option<i64>: Value<D::Db>,
    Option<String>: Value<D::Db>,
    Option<bool>: Value<D::Db>,
    for<'q> Option<&'q str>: Encode<'q, D::Db>,
{
    /// Each write in one transaction, where one refused (its quota, its name) leaves the others:
    /// one outcome per item, in their order. `Err` when the transaction itself failed (the
    /// database away fails them all at once, rather than each after its own wait), and then none
    /// was written. All are tried at once first; only when one is refused are they written again,
    /// each in a savepoint of its own (two statements more each, and each statement is a round
    /// trip to the writer).
    async fn each_in_savepoint<T: Sync, O: Send>(
        &self,
        items: &[T],
        workspace_of: fn(&T) -> &WorkspaceId,
        write: WriteIn<D::Db, T, O>,
    ) -> Result<Vec<Result<O>>> {
        let order = in_workspace_order(items, workspace_of);
        if let Some(outcomes) = self.all_at_once(items, &order, write).await? {
            return Ok(outcomes);
        }
        let mut tx = self.write_pool().begin().await.map_err(db_error)?;
        let mut outcomes = Vec::with_capacity(items.len());
        for index in order {
            let mut own = tx.begin().await.map_err(db_error)?;
            match write(&mut own, &items[index]).await {
                Err(err) if err.kind() == ErrorKind::Unavailable => return Err(err),
                Ok(done) => {
                    own.commit().await.map_err(db_error)?;
                    outcomes.push((index, Ok(done)));
                }
                Err(refused) => {
                    own.rollback().await.map_err(db_error)?;
                    outcomes.push((index, Err(refused)));
                }
            }
        }
        tx.commit().await.map_err(db_error)?;
        outcomes.sort_unstable_by_key(|(index, _)| *index);
        Ok(outcomes.into_iter().map(|(_, outcome)| outcome).collect())
    }

    /// Every write of `each_in_savepoint` in one transaction without savepoints: their outcomes,
    /// or `None` (nothing written) when one was refused.
    async fn all_at_once<T: Sync, O: Send>(
        &self,
        items: &[T],
        order: &[usize],
        write: WriteIn<D::Db, T, O>,
    ) -> Result<Option<Vec<Result<O>>>> {
        let mut tx = self.write_pool().begin().await.map_err(db_error)?;
        let mut outcomes = Vec::with_capacity(items.len());
        for &index in order {
            match write(&mut tx, &items[index]).await {
                Ok(done) => outcomes.push((index, Ok(done))),
                Err(err) if err.kind() == ErrorKind::Unavailable => return Err(err),
                Err(_refused) => {
                    tx.rollback().await.map_err(db_error)?;
                    return Ok(None);
                }
            }
        }
        tx.commit().await.map_err(db_error)?;
        outcomes.sort_unstable_by_key(|(index, _)| *index);
        Ok(Some(outcomes.into_iter().map(|(_, outcome)| outcome).collect()))
    }

    /// `begin_receiving` (or `begin_receiving_reserving`, when it reserves) in the caller's
    /// transaction: what the upload now holds reserved (0 when it does not reserve), or `None`
    /// (nothing written) when it was not WAITING.
    async fn begin_in(tx: &mut sqlx::Transaction<'_, D::Db>, begin: &Begin) -> Result<Option<u64>> {
        let (ws, id, at) = (&begin.workspace, &begin.upload, begin.at);
        let Some(most) = begin.reserving else {
            let begun = sqlx::query(
                "UPDATE uploads SET status = 'UPLOADING', updated_at = $1 \
                 WHERE workspace_id = $2 AND id = $3 AND status = 'WAITING'",
            )
            .bind(millis(at))
            .bind(ws.as_str())
            .bind(id.as_str())
            .execute(&mut **tx)
            .await
            .map_err(db_error)?;
            return Ok((D::rows_affected(&begun) == 1).then_some(0));
        };
        let ledger = Self::locked_ledger(tx, ws).await?;
        // What the upload already holds (a resumable upload's received bytes) counts as its own.
        let held: i64 = sqlx::query_scalar(
            "SELECT size FROM uploads \
             WHERE workspace_id = $1 AND id = $2 AND status = 'WAITING' AND size_known = $3",
        )
        .bind(ws.as_str())
        .bind(id.as_str())
        .bind(false)
        .fetch_optional(&mut **tx)
        .await
        .map_err(db_error)?
        .unwrap_or(0)
        .max(0);
        let grant = ledger.grant(bytes(most)?, held);
        let begun = sqlx::query(
            "UPDATE uploads SET status = 'UPLOADING', updated_at = $1, size = $2 \
             WHERE workspace_id = $3 AND id = $4 AND status = 'WAITING' AND size_known = $5",
        )
        .bind(millis(at))
        .bind(grant)
        .bind(ws.as_str())
        .bind(id.as_str())
        .bind(false)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
        if D::rows_affected(&begun) == 0 {
            return Ok(None);
        }
        Self::add_reserved(tx, ws, grant - held).await?;
        Ok(Some(grant.max(0) as u64))
    }

    /// Inserts a direct upload already UPLOADING, reserving as much of `most` bytes as the quota
    /// holds (recorded as its size), in the caller's transaction; returns the reservation.
    async fn insert_receiving_in(
        tx: &mut sqlx::Transaction<'_, D::Db>,
        upload: &(Upload, u64),
    ) -> Result<u64> {
        let (upload, most) = upload;
        let ws = &upload.workspace_id;
        let grant = Self::locked_ledger(tx, ws).await?.grant(bytes(*most)?, 0);
        let receiving = Upload { status: UploadStatus::Uploading, size: grant as u64, ..upload.clone() };
        let mut insert = Self::insert_uploads_statement(&[&receiving])?;
        D::execute_built(&mut insert, &mut **tx).await.map_err(db_error)?;
        Self::add_reserved(tx, ws, grant).await?;
        Ok(grant as u64)
    }

    /// Adds `more` bytes (judged against the quota already) to what the workspace holds reserved.
    async fn add_reserved(tx: &mut sqlx::Transaction<'_, D::Db>, ws: &WorkspaceId, more: i64) -> Result<()> {
        sqlx::query("UPDATE workspaces SET reserved_bytes = reserved_bytes + $1 WHERE id = $2")
            .bind(more)
            .bind(ws.as_str())
            .execute(&mut **tx)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    /// The workspace's ledger, its row locked by the same statement (a write: it locks the row on
    /// PostgreSQL, the database on SQLite), so what it reads stays true until the transaction
    /// commits.
    async fn locked_ledger(tx: &mut sqlx::Transaction<'_, D::Db>, ws: &WorkspaceId) -> Result<Ledger> {
        let (limit, used, reserved): (Option<i64>, i64, i64) = sqlx::query_as(
            "UPDATE workspaces SET reserved_bytes = reserved_bytes WHERE id = $1 \
             RETURNING limit_bytes, used_bytes, reserved_bytes",
        )
        .bind(ws.as_str())
        .fetch_optional(&mut **tx)
        .await
        .map_err(db_error)?
        .ok_or(Error::NotFound("workspace"))?;
        Ok(Ledger { limit, used, reserved })
    }

    /// `finish_upload`'s writes, in the caller's transaction: true when the upload was live and
    /// is now its file (the caller commits), false when it was not (nothing written).
    async fn finish_in(
        tx: &mut sqlx::Transaction<'_, D::Db>,
        ws: &WorkspaceId,
        id: &UploadId,
        file: &FileRecord,
    ) -> Result<bool> {
        // What the upload holds reserved: its declared size, or for one of unknown size
        // what was reserved while its bytes streamed. The upload then records the file's size.
        let reserved: Option<i64> = sqlx::query_scalar(
            "SELECT size FROM uploads WHERE workspace_id = $1 AND id = $2 AND status IN ('WAITING', \
             'UPLOADING')",
        )
        .bind(ws.as_str())
        .bind(id.as_str())
        .fetch_optional(&mut **tx)
        .await
        .map_err(db_error)?;
        let Some(reserved) = reserved else {
            return Ok(false);
        };
        let finished = sqlx::query(
            "UPDATE uploads SET status = 'SUCCESS', updated_at = $1, size = $2 \
             WHERE workspace_id = $3 AND id = $4 AND status IN ('WAITING', 'UPLOADING') AND size = $5",
        )
        .bind(millis(file.created_at))
        .bind(bytes(file.size)?)
        .bind(ws.as_str())
        .bind(id.as_str())
        .bind(reserved)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
        if D::rows_affected(&finished) == 0 {
            return Ok(false);
        }
        Self::insert_file(tx, file).await?;
        // Bytes beyond the reservation (an upload of unknown size reserved nothing) must
        // still fit the limit, checked in this same statement.
        let charged = sqlx::query(&format!(
            "UPDATE workspaces SET reserved_bytes = reserved_bytes - $1, used_bytes = used_bytes + $2 \
             WHERE id = $3 AND ($2 <= $1 OR {})",
            super::fits_quota("- $1 + $2")
        ))
        .bind(reserved)
        .bind(bytes(file.size)?)
        .bind(ws.as_str())
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
        if D::rows_affected(&charged) == 0 {
            let available: Option<i64> = sqlx::query_scalar(
                "SELECT limit_bytes - used_bytes - reserved_bytes + $1 FROM workspaces WHERE id = $2",
            )
            .bind(reserved)
            .bind(ws.as_str())
            .fetch_optional(&mut **tx)
            .await
            .map_err(db_error)?
            .flatten();
            return Err(super::quota_error(available, file.size));
        }
        Self::record_usage(tx, ws, file.created_at).await?;
        Ok(true)
    }

    /// The uploads' reservations, in one transaction: each workspace's ledger read and locked
    /// once, each upload judged by the quota in turn against what the ones before it took, one
    /// `INSERT` of those granted (and their records), and one charge a workspace. Three
    /// statements for a workspace's batch, where a charge an upload takes one each (each
    /// statement is a round trip to the writer). `None` (nothing written) when a statement was
    /// refused or a size is past the database's integer.
    async fn try_insert_uploads_reserving(
        &self,
        reservations: &[Reservation],
    ) -> Result<Option<Vec<Result<()>>>> {
        let mut tx = self.write_pool().begin().await.map_err(db_error)?;
        let order = in_workspace_order(reservations, |reservation| &reservation.upload.workspace_id);
        let mut outcomes: Vec<Result<()>> = reservations.iter().map(|_| Ok(())).collect();
        // Each workspace's ledger as this transaction leaves it, and what it reserves in all.
        let mut ledgers: Vec<(&WorkspaceId, Option<Ledger>, i64)> = Vec::new();
        for &index in &order {
            let upload = &reservations[index].upload;
            let ws = &upload.workspace_id;
            if ledgers.last().is_none_or(|(locked, _, _)| *locked != ws) {
                match Self::locked_ledger(&mut tx, ws).await {
                    Ok(ledger) => ledgers.push((ws, Some(ledger), 0)),
                    // Each of its uploads is refused below; the others stand.
                    Err(Error::NotFound(_)) => ledgers.push((ws, None, 0)),
                    Err(err) => return refused_as_a_whole(err),
                }
            }
            let Some((_, ledger, reserving)) = ledgers.last_mut() else { return Ok(None) };
            let Some(ledger) = ledger else {
                outcomes[index] = Err(Error::NotFound("workspace"));
                continue;
            };
            let Ok(size) = bytes(upload.size) else { return Ok(None) };
            let available = ledger.limit.map(|limit| limit - ledger.used - ledger.reserved);
            if available.is_some_and(|available| size > available) {
                // Refused, nothing changed: the others stand.
                outcomes[index] = Err(super::quota_error(available, upload.size));
                continue;
            }
            ledger.reserved += size;
            *reserving += size;
        }
        let granted: Vec<&Reservation> =
            order.iter().filter(|i| outcomes[**i].is_ok()).map(|i| &reservations[*i]).collect();
        if !granted.is_empty() {
            let uploads: Vec<&Upload> = granted.iter().map(|reservation| &reservation.upload).collect();
            // A size past the database's integer: the one-by-one inserts refuse that upload alone.
            let Ok(mut insert) = Self::insert_uploads_statement(&uploads) else { return Ok(None) };
            if let Err(err) = D::execute_built(&mut insert, &mut *tx).await {
                return refused_as_a_whole(db_error(err));
            }
            let records: Vec<&NewAuditRecord> =
                granted.iter().filter_map(|reservation| reservation.record.as_ref()).collect();
            if let Err(err) = Self::append_audit_in(&mut tx, &records).await {
                return refused_as_a_whole(err);
            }
        }
        for (ws, _, reserving) in ledgers.iter().filter(|(_, _, reserving)| *reserving != 0) {
            if let Err(err) = Self::add_reserved(&mut tx, ws, *reserving).await {
                return refused_as_a_whole(err);
            }
        }
        tx.commit().await.map_err(db_error)?;
        Ok(Some(outcomes))
    }

    /// Uploads of known size begun together: one `UPDATE … FROM (VALUES …)` moves every one still
    /// WAITING to UPLOADING, where one at a time takes a statement each (each a round trip to the
    /// writer). Whether each began, in the begins' order; `None` (nothing written) for a batch
    /// this does not take (an upload of unknown size reserves as it begins, one named twice
    /// begins once) or when the statement was refused.
    async fn try_begin_receiving_together(&self, begins: &[Begin]) -> Result<Option<Vec<Option<u64>>>> {
        let mut named = HashSet::with_capacity(begins.len());
        let distinct =
            begins.iter().all(|begin| named.insert((begin.workspace.as_str(), begin.upload.as_str())));
        if begins.len() < 2 || !distinct || begins.iter().any(|begin| begin.reserving.is_some()) {
            return Ok(None);
        }
        let order = in_workspace_order(begins, |begin| &begin.workspace);
        let mut tx = self.write_pool().begin().await.map_err(db_error)?;
        let mut mark =
            QueryBuilder::new("UPDATE uploads SET status = 'UPLOADING', updated_at = v.column3 FROM (");
        mark.push_values(&order, |mut row, &index| {
            let begin = &begins[index];
            row.push_bind(begin.workspace.to_string())
                .push_bind(begin.upload.to_string())
                .push_bind(millis(begin.at));
        });
        mark.push(
            ") AS v WHERE uploads.workspace_id = v.column1 AND uploads.id = v.column2 \
             AND uploads.status = 'WAITING' RETURNING uploads.workspace_id, uploads.id",
        );
        let begun: Vec<(String, String)> = match D::fetch_built(&mut mark, &mut *tx).await {
            Ok(begun) => begun,
            Err(err) => return refused_as_a_whole(db_error(err)),
        };
        tx.commit().await.map_err(db_error)?;
        let begun: HashSet<(String, String)> = begun.into_iter().collect();
        Ok(Some(
            begins
                .iter()
                .map(|begin| {
                    let named = (begin.workspace.to_string(), begin.upload.to_string());
                    begun.contains(&named).then_some(0)
                })
                .collect(),
        ))
    }

    /// Direct uploads inserted already receiving, in one transaction: each workspace's ledger
    /// read and locked once, each upload granted in turn as much of its most bytes as the quota
    /// still holds, one `INSERT` of them all, and one reservation a workspace. Three statements
    /// for a workspace's batch, where one upload at a time takes three each (each statement is a
    /// round trip to the writer). The grants in the uploads' order, or `None` (nothing written)
    /// when a statement was refused.
    async fn try_insert_uploads_receiving(&self, uploads: &[(Upload, u64)]) -> Result<Option<Vec<u64>>> {
        if uploads.is_empty() {
            return Ok(Some(Vec::new()));
        }
        let mut tx = self.write_pool().begin().await.map_err(db_error)?;
        let order = in_workspace_order(uploads, |(upload, _)| &upload.workspace_id);
        let mut grants = vec![0; uploads.len()];
        let mut receiving = Vec::with_capacity(uploads.len());
        // Each workspace's ledger as this transaction leaves it, and what it reserves in all.
        let mut ledgers: Vec<(&WorkspaceId, Ledger, i64)> = Vec::new();
        for &index in &order {
            let (upload, most) = &uploads[index];
            let ws = &upload.workspace_id;
            if ledgers.last().is_none_or(|(locked, _, _)| *locked != ws) {
                match Self::locked_ledger(&mut tx, ws).await {
                    Ok(ledger) => ledgers.push((ws, ledger, 0)),
                    Err(err) => return refused_as_a_whole(err),
                }
            }
            let Some((_, ledger, reserving)) = ledgers.last_mut() else { return Ok(None) };
            let Ok(most) = bytes(*most) else { return Ok(None) };
            let grant = ledger.grant(most, 0);
            ledger.reserved += grant;
            *reserving += grant;
            grants[index] = grant as u64;
            receiving.push(Upload { status: UploadStatus::Uploading, size: grant as u64, ..upload.clone() });
        }
        let receiving: Vec<&Upload> = receiving.iter().collect();
        let Ok(mut insert) = Self::insert_uploads_statement(&receiving) else { return Ok(None) };
        if let Err(err) = D::execute_built(&mut insert, &mut *tx).await {
            return refused_as_a_whole(db_error(err));
        }
        for (ws, _, reserving) in ledgers.iter().filter(|(_, _, reserving)| *reserving != 0) {
            Self::add_reserved(&mut tx, ws, *reserving).await?;
        }
        tx.commit().await.map_err(db_error)?;
        Ok(Some(grants))
    }

    /// Uploads finished as one batch, each as `finish_in` would, in a few statements where
    /// `finish_in` takes five for each: the reservations read in one, the uploads marked in one,
    /// the files (and their tags) inserted in one, and per workspace one charge, then the usage
    /// ledger's steps in one. Whether each was live and is now its file, in their order; `None`
    /// (nothing written) when the batch is not judged as a whole: a file past what its upload
    /// reserved (the quota judges each such file on its own), a charge that crosses a quota
    /// threshold (the crossing is an event after the file that made it), or a refused statement.
    async fn try_finish_uploads_together(&self, finishes: &[Finish]) -> Result<Option<Vec<bool>>> {
        if finishes.len() < 2 {
            return Ok(None);
        }
        let mut tx = self.write_pool().begin().await.map_err(db_error)?;
        let order = in_workspace_order(finishes, |finish| &finish.file.workspace_id);
        // The uploads named, each found by its key: a list of `OR`ed keys made SQLite scan every
        // live upload of the index on status instead, once a batch held eight or more.
        let mut select = QueryBuilder::<'static, D::Db>::new("SELECT u.workspace_id, u.id, u.size FROM (");
        select.push_values(finishes, |mut row, finish| {
            row.push_bind(finish.file.workspace_id.to_string()).push_bind(finish.upload.to_string());
        });
        select.push(
            ") AS v JOIN uploads u ON u.workspace_id = v.column1 AND u.id = v.column2 \
             WHERE u.status IN ('WAITING', 'UPLOADING')",
        );
        let live: Vec<(String, String, i64)> =
            D::fetch_built(&mut select, &mut *tx).await.map_err(db_error)?;
        let reserved_by = |finish: &Finish| {
            live.iter()
                .find(|(ws, id, _)| ws == finish.file.workspace_id.as_str() && id == finish.upload.as_str())
                .map(|(_, _, reserved)| *reserved)
        };
        let mut finished = vec![false; finishes.len()];
        // (index, reserved, size) of each live one, in the lock order.
        let mut writing: Vec<(usize, i64, i64)> = Vec::with_capacity(live.len());
        for &index in &order {
            let finish = &finishes[index];
            let Some(reserved) = reserved_by(finish) else { continue };
            let Ok(size) = bytes(finish.file.size) else { return Ok(None) };
            let twice = writing.iter().any(|(other, _, _)| {
                finishes[*other].upload == finish.upload
                    && finishes[*other].file.workspace_id == finish.file.workspace_id
            });
            if size > reserved || twice {
                return Ok(None);
            }
            finished[index] = true;
            writing.push((index, reserved, size));
        }
        if writing.is_empty() {
            return Ok(Some(finished));
        }
        // Marked first: a row of each, locked in the order every other write takes them.
        let mut mark = QueryBuilder::<'static, D::Db>::new(
            "UPDATE uploads SET status = 'SUCCESS', updated_at = v.column3, size = v.column4 FROM (",
        );
        mark.push_values(&writing, |mut row, &(index, reserved, size)| {
            let finish = &finishes[index];
            row.push_bind(finish.file.workspace_id.to_string())
                .push_bind(finish.upload.to_string())
                .push_bind(millis(finish.file.created_at))
                .push_bind(size)
                .push_bind(reserved);
        });
        mark.push(
            ") AS v WHERE uploads.workspace_id = v.column1 AND uploads.id = v.column2 \
             AND uploads.status IN ('WAITING', 'UPLOADING') AND uploads.size = v.column5 RETURNING uploads.id",
        );
        let marked: Vec<(String,)> = match D::fetch_built(&mut mark, &mut *tx).await {
            Ok(marked) => marked,
            Err(err) => return refused_as_a_whole(db_error(err)),
        };
        // Another node changed one since it was read: each is judged on its own.
        if marked.len() != writing.len() {
            return Ok(None);
        }
        // Each workspace's charge, judged against its thresholds. Its row is locked after the
        // uploads' rows, the order every other write to both takes (finishing, failing or
        // expiring one upload at a time).
        let mut charges: Vec<(&WorkspaceId, i64, i64, Ledger)> = Vec::new();
        for &(index, reserved, size) in &writing {
            let ws = &finishes[index].file.workspace_id;
            if charges.last().is_none_or(|(charged, ..)| *charged != ws) {
                match Self::locked_ledger(&mut tx, ws).await {
                    Ok(ledger) => charges.push((ws, 0, 0, ledger)),
                    Err(err) => return refused_as_a_whole(err),
                }
            }
            if let Some((_, releasing, charging, _)) = charges.last_mut() {
                *releasing += reserved;
                *charging += size;
            }
        }
        if charges.iter().any(|(_, _, charging, ledger)| crosses_a_threshold(ledger, *charging)) {
            return Ok(None);
        }
        let files: Vec<&FileRecord> = writing.iter().map(|(index, _, _)| &finishes[*index].file).collect();
        if let Err(err) = Self::insert_files(&mut tx, &files).await {
            return refused_as_a_whole(err);
        }
        for (ws, releasing, charging, _) in &charges {
            sqlx::query(
                "UPDATE workspaces SET reserved_bytes = reserved_bytes - $1, used_bytes = used_bytes + $2 WHERE id = $3",
            )
            .bind(*releasing)
            .bind(*charging)
            .bind(ws.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        }
        // Every value the workspace's usage took, with when: one step a file, as one at a time.
        let mut steps =
            QueryBuilder::<'static, D::Db>::new("INSERT INTO usage_ledger (workspace_id, at, used_bytes) ");
        let mut used: Vec<i64> = Vec::with_capacity(writing.len());
        let mut running: Option<(&WorkspaceId, i64)> = None;
        for &(index, _, size) in &writing {
            let ws = &finishes[index].file.workspace_id;
            let before = match running {
                Some((current, used)) if current == ws => used,
                _ => {
                    charges.iter().find(|(charged, ..)| *charged == ws).map_or(0, |(.., ledger)| ledger.used)
                }
            };
            running = Some((ws, before + size));
            used.push(before + size);
        }
        steps.push_values(writing.iter().zip(&used), |mut row, (&(index, _, _), used)| {
            let file = &finishes[index].file;
            row.push_bind(file.workspace_id.to_string()).push_bind(millis(file.created_at)).push_bind(*used);
        });
        D::execute_built(&mut steps, &mut *tx).await.map_err(db_error)?;
        let records: Vec<&NewAuditRecord> =
            writing.iter().filter_map(|(index, _, _)| finishes[*index].record.as_ref()).collect();
        Self::append_audit_in(&mut tx, &records).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(Some(finished))
    }

    /// `INSERT INTO uploads … VALUES (…), (…)` of these uploads; an error when a size does not fit
    /// the database's integer.
    fn insert_uploads_statement(uploads: &[&Upload]) -> Result<QueryBuilder<'static, D::Db>> {
        let sizes = uploads
            .iter()
            .map(|upload| Ok((bytes(upload.size)?, upload.part_size.map(bytes).transpose()?)))
            .collect::<Result<Vec<(i64, Option<i64>)>>>()?;
        let mut insert = QueryBuilder::new(format!("INSERT INTO uploads ({UPLOAD_COLUMNS}) "));
        insert.push_values(uploads.iter().zip(sizes), |mut row, (upload, (size, part_size))| {
            row.push_bind(upload.workspace_id.to_string())
                .push_bind(upload.id.to_string())
                .push_bind(upload.name.clone())
                .push_bind(size)
                .push_bind(upload.declared_mime.clone())
                .push_bind(upload.sha256.clone())
                .push_bind(upload.folder_id.as_ref().map(|id| id.to_string()))
                .push_bind(upload.status.as_str().to_owned())
                .push_bind(upload.failure_reason.map(|reason| reason.as_str().to_owned()))
                .push_bind(upload.file_id.to_string())
                .push_bind(upload.blob_key.clone())
                .push_bind(millis(upload.created_at))
                .push_bind(millis(upload.updated_at))
                .push_bind(millis(upload.expires_at))
                .push_bind(upload.created_by.clone())
                .push_bind(upload.size_known)
                .push_bind(part_size)
                .push_bind(upload.multipart_id.clone())
                .push_bind(upload.awaits_record);
        });
        Ok(insert)
    }

    /// `finish_in` of one of a batch, with its record when it finished.
    async fn finish_recorded_in(tx: &mut sqlx::Transaction<'_, D::Db>, finish: &Finish) -> Result<bool> {
        let finished = Self::finish_in(tx, &finish.file.workspace_id, &finish.upload, &finish.file).await?;
        if finished {
            Self::append_audit_in(tx, &Vec::from_iter(&finish.record)).await?;
        }
        Ok(finished)
    }

    /// One reservation in a transaction of its own, with its record if it has one.
    async fn insert_reservation(&self, upload: &Upload, record: Option<&NewAuditRecord>) -> Result<()> {
        let mut tx = self.write_pool().begin().await.map_err(db_error)?;
        Self::insert_reserving(&mut tx, upload).await?;
        Self::append_audit_in(&mut tx, &Vec::from_iter(record)).await?;
        tx.commit().await.map_err(db_error)
    }

    /// Inserts a live upload and reserves its size in the transaction: `QuotaExceeded` (and
    /// nothing written) when it does not fit.
    async fn insert_reserving(tx: &mut sqlx::Transaction<'_, D::Db>, upload: &Upload) -> Result<()> {
        let mut insert = Self::insert_uploads_statement(&[upload])?;
        Self::charge(tx, &upload.workspace_id, "reserved_bytes", upload.size).await?;
        D::execute_built(&mut insert, &mut **tx).await.map_err(db_error)?;
        Ok(())
    }

    /// Moves an upload from status `from` to `to`; false when it was not in `from`.
    pub(super) async fn move_upload(
        &self,
        ws: &WorkspaceId,
        id: &UploadId,
        at: DateTime<Utc>,
        from: &'static str,
        to: &'static str,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE uploads SET status = $1, updated_at = $2 \
             WHERE workspace_id = $3 AND id = $4 AND status = $5",
        )
        .bind(to)
        .bind(millis(at))
        .bind(ws.as_str())
        .bind(id.as_str())
        .bind(from)
        .execute(self.write_pool())
        .await
        .map_err(db_error)?;
        Ok(D::rows_affected(&done) == 1)
    }

    pub(super) fn id_pairs(
        rows: Vec<<D::Db as sqlx::Database>::Row>,
    ) -> Result<Vec<(WorkspaceId, UploadId)>> {
        rows.into_iter()
            .map(|row| {
                let ws: String = row.try_get("workspace_id").map_err(db_error)?;
                let id: String = row.try_get("id").map_err(db_error)?;
                Ok((ws.parse()?, id.parse()?))
            })
            .collect()
    }
}

#[async_trait::async_trait]
impl<D: Dialect> cabinet_core::UploadStore for SqlStore<D>
where
    for<'c> &'c mut <D::Db as Database>::Connection: Executor<'c, Database = D::Db>,
    for<'q> <D::Db as Database>::Arguments<'q>: IntoArguments<'q, D::Db>,
    for<'q> &'q str: Encode<'q, D::Db> + Type<D::Db> + ColumnIndex<<D::Db as Database>::Row>,
    usize: ColumnIndex<<D::Db as Database>::Row>,
    i64: Value<D::Db>,
    String: Value<D::Db>,
    bool: Value<D::Db>,
    Option<i64>: Value<D::Db>,
    Option<String>: Value<D::Db>,
    Option<bool>: Value<D::Db>,
    for<'q> Option<&'q str>: Encode<'q, D::Db>,
{
    async fn insert_upload_reserving(&self, upload: &Upload) -> Result<()> {
        self.insert_reservation(upload, None).await
    }

    async fn insert_uploads_reserving(&self, reservations: &[Reservation]) -> Result<Vec<Result<()>>> {
        match self.try_insert_uploads_reserving(reservations).await? {
            Some(outcomes) => Ok(outcomes),
            // One upload could not be inserted for a reason of its own (not the quota, which is
            // judged before): each goes in a transaction of its own, so only that one fails.
            None => {
                let mut outcomes = Vec::with_capacity(reservations.len());
                for reservation in reservations {
                    outcomes.push(
                        self.insert_reservation(&reservation.upload, reservation.record.as_ref()).await,
                    );
                }
                Ok(outcomes)
            }
        }
    }

    async fn get_upload(&self, ws: &WorkspaceId, id: &UploadId) -> Result<Upload> {
        sqlx::query_as::<_, UploadRow>(&format!(
            "SELECT {UPLOAD_COLUMNS} FROM uploads WHERE workspace_id = $1 AND id = $2"
        ))
        .bind(ws.as_str())
        .bind(id.as_str())
        .fetch_optional(self.read_pool())
        .await
        .map_err(db_error)?
        .ok_or(Error::NotFound("upload"))?
        .try_into()
    }

    async fn upload_of_file(&self, ws: &WorkspaceId, file: &FileId) -> Result<Upload> {
        sqlx::query_as::<_, UploadRow>(&format!(
            "SELECT {UPLOAD_COLUMNS} FROM uploads WHERE workspace_id = $1 AND file_id = $2"
        ))
        .bind(ws.as_str())
        .bind(file.as_str())
        .fetch_optional(self.read_pool())
        .await
        .map_err(db_error)?
        .ok_or(Error::NotFound("upload"))?
        .try_into()
    }

    async fn begin_receiving(&self, ws: &WorkspaceId, id: &UploadId, at: DateTime<Utc>) -> Result<bool> {
        self.move_upload(ws, id, at, "WAITING", "UPLOADING").await
    }

    async fn reserve_more(&self, ws: &WorkspaceId, id: &UploadId, more: u64) -> Result<bool> {
        let mut tx = self.write_pool().begin().await.map_err(db_error)?;
        let grown = sqlx::query(
            "UPDATE uploads SET size = size + $1 \
             WHERE workspace_id = $2 AND id = $3 AND status = 'WAITING' AND size_known = $4",
        )
        .bind(bytes(more)?)
        .bind(ws.as_str())
        .bind(id.as_str())
        .bind(false)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        if D::rows_affected(&grown) == 0 {
            return Ok(false);
        }
        Self::charge(&mut tx, ws, "reserved_bytes", more).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(true)
    }

    async fn reserve_exactly(&self, ws: &WorkspaceId, id: &UploadId, size: u64) -> Result<bool> {
        let mut tx = self.write_pool().begin().await.map_err(db_error)?;
        Self::lock_workspace(&mut tx, ws).await?;
        let held: Option<i64> = sqlx::query_scalar(
            "SELECT size FROM uploads \
             WHERE workspace_id = $1 AND id = $2 AND status = 'WAITING' AND size_known = $3",
        )
        .bind(ws.as_str())
        .bind(id.as_str())
        .bind(false)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        let Some(held) = held else { return Ok(false) };
        let (size, held) = (bytes(size)?, held.max(0));
        if size > held {
            Self::charge(&mut tx, ws, "reserved_bytes", (size - held) as u64).await?;
        } else if size < held {
            sqlx::query("UPDATE workspaces SET reserved_bytes = reserved_bytes - $1 WHERE id = $2")
                .bind(held - size)
                .bind(ws.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
        }
        sqlx::query("UPDATE uploads SET size = $1 WHERE workspace_id = $2 AND id = $3")
            .bind(size)
            .bind(ws.as_str())
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(true)
    }

    async fn begin_receiving_reserving(
        &self,
        ws: &WorkspaceId,
        id: &UploadId,
        at: DateTime<Utc>,
        most: u64,
    ) -> Result<Option<u64>> {
        let mut tx = self.write_pool().begin().await.map_err(db_error)?;
        let begin = Begin { workspace: ws.clone(), upload: id.clone(), at, reserving: Some(most) };
        let begun = Self::begin_in(&mut tx, &begin).await?;
        if begun.is_some() {
            tx.commit().await.map_err(db_error)?;
        }
        Ok(begun)
    }

    async fn finish_upload(&self, ws: &WorkspaceId, id: &UploadId, file: &FileRecord) -> Result<bool> {
        let mut tx = self.write_pool().begin().await.map_err(db_error)?;
        let finished = Self::finish_in(&mut tx, ws, id, file).await?;
        if finished {
            tx.commit().await.map_err(db_error)?;
        }
        Ok(finished)
    }

    async fn finish_uploads(&self, finishes: &[Finish]) -> Result<Vec<Result<bool>>> {
        if let Some(finished) = self.try_finish_uploads_together(finishes).await? {
            return Ok(finished.into_iter().map(Ok).collect());
        }
        // Judged one by one: only what is refused fails.
        self.each_in_savepoint(
            finishes,
            |finish| &finish.file.workspace_id,
            |tx, finish| Box::pin(Self::finish_recorded_in(tx, finish)),
        )
        .await
    }

    async fn begin_receiving_all(&self, begins: &[Begin]) -> Result<Vec<Result<Option<u64>>>> {
        if let Some(begun) = self.try_begin_receiving_together(begins).await? {
            return Ok(begun.into_iter().map(Ok).collect());
        }
        self.each_in_savepoint(
            begins,
            |begin| &begin.workspace,
            |tx, begin| Box::pin(Self::begin_in(tx, begin)),
        )
        .await
    }

    async fn insert_uploads_receiving(&self, uploads: &[(Upload, u64)]) -> Result<Vec<Result<u64>>> {
        if let Some(grants) = self.try_insert_uploads_receiving(uploads).await? {
            return Ok(grants.into_iter().map(Ok).collect());
        }
        // One could not be written for a reason of its own: each in turn, so only it fails.
        self.each_in_savepoint(
            uploads,
            |(upload, _)| &upload.workspace_id,
            |tx, upload| Box::pin(Self::insert_receiving_in(tx, upload)),
        )
        .await
    }

    async fn fail_upload(
        &self,
        ws: &WorkspaceId,
        id: &UploadId,
        reason: FailureReason,
        at: DateTime<Utc>,
    ) -> Result<bool> {
        let mut tx = self.write_pool().begin().await.map_err(db_error)?;
        let reserved: Option<i64> = sqlx::query_scalar(
            "UPDATE uploads SET status = 'FAILED', failure_reason = $1, updated_at = $2 \
             WHERE workspace_id = $3 AND id = $4 AND status IN ('WAITING', 'UPLOADING') RETURNING size",
        )
        .bind(reason.as_str())
        .bind(millis(at))
        .bind(ws.as_str())
        .bind(id.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        let Some(reserved) = reserved else {
            return Ok(false);
        };
        sqlx::query("UPDATE workspaces SET reserved_bytes = reserved_bytes - $1 WHERE id = $2")
            .bind(reserved)
            .bind(ws.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(true)
    }

    async fn expired_uploads(
        &self,
        waiting_before: DateTime<Utc>,
        uploading_before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<(WorkspaceId, UploadId)>> {
        let rows = sqlx::query(
            "SELECT workspace_id, id FROM uploads \
             WHERE (status = 'WAITING' AND expires_at <= $1) OR (status = 'UPLOADING' AND expires_at <= $2) \
             LIMIT $3",
        )
        .bind(millis(waiting_before))
        .bind(millis(uploading_before))
        .bind(i64::from(limit))
        .fetch_all(self.read_pool())
        .await
        .map_err(db_error)?;
        Self::id_pairs(rows)
    }

    async fn uploads_failed_before_expiry(
        &self,
        after: DateTime<Utc>,
        after_id: Option<&UploadId>,
        by: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Upload>> {
        // The range on `expires_at` alone walks the index (`uploads_failed_by_expiry`); the
        // uploads of the same millisecond as the last one seen are told apart by their ids.
        let rows = sqlx::query_as::<_, UploadRow>(&format!(
            "SELECT {UPLOAD_COLUMNS} FROM uploads WHERE status = 'FAILED' \
             AND expires_at >= $1 AND expires_at < $3 AND (expires_at > $1 OR id > $2) \
             AND updated_at < expires_at ORDER BY expires_at, id LIMIT $4"
        ))
        .bind(millis(after))
        .bind(after_id.map_or("", |id| id.as_str()))
        .bind(millis(by))
        .bind(i64::from(limit))
        .fetch_all(self.read_pool())
        .await
        .map_err(db_error)?;
        rows.into_iter().map(Upload::try_from).collect()
    }

    async fn reopen_upload(&self, ws: &WorkspaceId, id: &UploadId, at: DateTime<Utc>) -> Result<bool> {
        self.move_upload(ws, id, at, "UPLOADING", "WAITING").await
    }

    async fn receiving_uploads(&self, limit: u32) -> Result<Vec<(WorkspaceId, UploadId)>> {
        let rows = sqlx::query("SELECT workspace_id, id FROM uploads WHERE status = 'UPLOADING' LIMIT $1")
            .bind(i64::from(limit))
            .fetch_all(self.read_pool())
            .await
            .map_err(db_error)?;
        Self::id_pairs(rows)
    }

    async fn waiting_open_uploads(
        &self,
        ws: &WorkspaceId,
        after: Option<&UploadId>,
        limit: u32,
    ) -> Result<Vec<Upload>> {
        let rows = sqlx::query_as::<_, UploadRow>(&format!(
            "SELECT {UPLOAD_COLUMNS} FROM uploads \
             WHERE workspace_id = $1 AND status = 'WAITING' AND size_known = $2 AND part_size IS NULL \
             AND awaits_record = $2 AND id > $3 ORDER BY id LIMIT $4"
        ))
        .bind(ws.as_str())
        .bind(false)
        .bind(after.map_or("", |id| id.as_str()))
        .bind(i64::from(limit))
        .fetch_all(self.read_pool())
        .await
        .map_err(db_error)?;
        rows.into_iter().map(Upload::try_from).collect()
    }

    async fn waiting_uploads(&self, after: Option<&UploadId>, limit: u32) -> Result<Vec<Upload>> {
        let rows = sqlx::query_as::<_, UploadRow>(&format!(
            "SELECT {UPLOAD_COLUMNS} FROM uploads WHERE status = 'WAITING' AND id > $1 ORDER BY id LIMIT $2"
        ))
        .bind(after.map_or("", |id| id.as_str()))
        .bind(i64::from(limit))
        .fetch_all(self.read_pool())
        .await
        .map_err(db_error)?;
        rows.into_iter().map(Upload::try_from).collect()
    }
}
