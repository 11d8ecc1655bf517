//! Group commit of refresh rotations (issue 10, docs/benchmarks.md, "W2"): rotations of
//! different families that arrive together are decided and written in one transaction, with
//! their `token.refreshed` events, and each request still waits for that commit before it
//! answers ([`buzzgate_local::batch`]).
//!
//! A batch is four round trips whatever its size: `BEGIN` with the exclusive locks of the
//! presented tokens' families (one message), the locked read of the presented rows and their
//! tombstones, one statement with every write, `COMMIT`. The rules are those of one rotation
//! (`TokenStore::rotate_refresh`, SPEC 11): the family's lock, then the row's; the decision is
//! `RefreshRotation::decide` on the row as locked. A round decides at most one rotation per
//! family, so the writes of a round never touch one row twice and each decision sees the
//! family as the previous one left it: a second rotation of a family in the batch (a client's
//! retry, a replay) waits for the next round, in a transaction of its own.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use async_trait::async_trait;
use buzzgate_domain::StoreError;
use buzzgate_domain::audit::AuditEvent;
use buzzgate_domain::grant::refresh_token::{RefreshRotation, RotationDecision};
use buzzgate_domain::ports::StoreResult;
use buzzgate_domain::token::{TokenHash, TokenRecord};
use buzzgate_local::batch::BatchWrite;
use sqlx::{PgConnection, PgPool, Row};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::appends::{INSERT_EVENTS, INSERT_TOKENS, bind_events, bind_rows, open_naming};
use crate::tokens::{FAMILY_KEY, TOKEN_COLUMNS, TokenRow};
use crate::{Done, Fail, hash_from, transaction};

/// One refresh request: the presented token's hash, the rotation to decide, and the
/// `token.refreshed` event to record in the same commit (`None`: the caller records it).
pub(crate) struct Rotation {
    pub(crate) presented: TokenHash,
    pub(crate) rotation: RefreshRotation,
    pub(crate) refreshed: Option<AuditEvent>,
}

/// What a rotation became, and whether its event was written.
pub(crate) type Rotated = (RotationDecision, bool);

/// The batch writer of rotations over the pool.
pub(crate) struct Rotator {
    pub(crate) pool: PgPool,
}

#[async_trait]
impl BatchWrite<Rotation, Rotated> for Rotator {
    async fn write(&self, items: &[Rotation]) -> StoreResult<Vec<Rotated>> {
        let mut done: Vec<Option<Rotated>> = vec![None; items.len()];
        let mut pending: Vec<usize> = (0..items.len()).collect();
        // Each round settles the first pending rotation at least (its token and family are
        // new to the round) unless its row appeared after the round's locks were taken, and
        // then the next round locks it: so at most one round per item, and one more.
        for _ in 0..=items.len() {
            if pending.is_empty() {
                break;
            }
            let (settled, deferred) = self.round(items, &pending).await?;
            for (i, r) in settled {
                done[i] = Some(r);
            }
            pending = deferred;
        }
        done.into_iter()
            .map(|d| d.ok_or_else(|| StoreError::Internal("a rotation was left undecided".into())))
            .collect()
    }
}

/// Rotations settled in a round (by item index), and those left for the next.
type Round = (Vec<(usize, Rotated)>, Vec<usize>);

impl Rotator {
    /// One transaction over the `pending` items.
    async fn round(&self, items: &[Rotation], pending: &[usize]) -> StoreResult<Round> {
        let hashes: Vec<&TokenHash> = pending.iter().map(|&i| &items[i].presented).collect();
        let opening = lock_families_of(&hashes);
        transaction!(
            @begin open_naming(&self.pool, &opening),
            |c, locked| {
                let rows = locked_rows(&mut *c, &hashes).await?;
                let mut seen_hashes = HashSet::new();
                let mut seen_families = HashSet::new();
                let mut deferred = Vec::new();
                let mut settled: Vec<(usize, RotationDecision, Option<AuditEvent>)> = Vec::new();
                for &i in pending {
                    let item = &items[i];
                    let found = rows.get(&item.presented.0);
                    let family = found.and_then(|(r, _)| r.family_id).map(|f| f.0);
                    if !seen_hashes.insert(item.presented.0)
                        || family.is_some_and(|f| !locked.contains(&f) || !seen_families.insert(f))
                    {
                        deferred.push(i);
                        continue;
                    }
                    let decision = item.rotation.decide(
                        found.map(|(r, _)| r),
                        found.is_some_and(|(_, revoked)| *revoked),
                    );
                    let event = item.refreshed.as_ref().and_then(|e| decision.audited(e));
                    settled.push((i, decision, event));
                }
                let retired = write(&mut *c, items, &settled).await?;
                let settled = settled
                    .into_iter()
                    .map(|(i, mut decision, event)| {
                        if let RotationDecision::Rotate { refresh, superseded, .. } = &mut decision
                            && let Some(f) = refresh.family_id
                        {
                            *superseded = retired.get(&f.0).cloned().unwrap_or_default();
                        }
                        (i, (decision, event.is_some()))
                    })
                    .collect();
                Ok(Done::Commit((settled, deferred)))
            }
        )
    }
}

/// The statement that opens a round, after `BEGIN`: the exclusive advisory lock of every
/// family among the presented tokens, in one order (the key of `tokens::lock_families`),
/// naming each family locked. The hashes are inlined as hex this process formatted, because a
/// simple-query message takes no parameters.
fn lock_families_of(hashes: &[&TokenHash]) -> String {
    let list = hashes
        .iter()
        .map(|h| format!("decode('{}','hex')", h.to_hex()))
        .collect::<Vec<_>>()
        .join(",");
    format!(
        "SELECT family_id, pg_advisory_xact_lock(k) FROM (SELECT DISTINCT f AS family_id, \
         {FAMILY_KEY} AS k FROM (SELECT family_id AS f FROM tokens WHERE hash IN ({list}) \
         AND family_id IS NOT NULL) AS presented ORDER BY k) AS keys"
    )
}

/// The presented rows, locked `FOR UPDATE`, each with whether its family has a tombstone.
/// The statement's snapshot is taken after the round's family locks were granted.
async fn locked_rows(
    c: &mut PgConnection,
    hashes: &[&TokenHash],
) -> Result<HashMap<[u8; 32], (TokenRecord, bool)>, Fail> {
    #[derive(sqlx::FromRow)]
    struct Locked {
        #[sqlx(flatten)]
        row: TokenRow,
        family_revoked: bool,
    }
    let found = sqlx::query_as::<_, Locked>(&format!(
        "SELECT {TOKEN_COLUMNS}, EXISTS (SELECT 1 FROM revoked_families r \
         WHERE r.family_id = t.family_id) AS family_revoked \
         FROM tokens t WHERE t.hash = ANY($1::bytea[]) FOR UPDATE OF t"
    ))
    .bind(hashes.iter().map(|h| h.0.to_vec()).collect::<Vec<_>>())
    .fetch_all(c)
    .await?;
    let mut rows = HashMap::with_capacity(found.len());
    for l in found {
        let record = l.row.into_record()?;
        rows.insert(record.hash.0, (record, l.family_revoked));
    }
    Ok(rows)
}

/// Every write of a round's rotations in one statement: the presented rows marked rotated,
/// each family's other live heads retired (returned by family, for `superseded`), the
/// successors inserted, the events recorded. The two updates touch different rows (one
/// family per rotation in a round, and `hash <> presented`), and the new rows are not in the
/// statement's snapshot, so no successor is retired.
async fn write(
    c: &mut PgConnection,
    items: &[Rotation],
    settled: &[(usize, RotationDecision, Option<AuditEvent>)],
) -> Result<HashMap<Uuid, Vec<TokenHash>>, Fail> {
    let mut successors: Vec<&TokenRecord> = Vec::new();
    let mut events: Vec<&AuditEvent> = Vec::new();
    let (mut marked, mut marked_at) = (Vec::new(), Vec::<OffsetDateTime>::new());
    let (mut families, mut presented, mut retired_at) = (Vec::new(), Vec::new(), Vec::new());
    for (i, decision, event) in settled {
        let RotationDecision::Rotate {
            mark_rotated,
            access,
            refresh,
            ..
        } = decision
        else {
            continue;
        };
        let (hash, now) = (items[*i].presented.0.to_vec(), items[*i].rotation.now);
        if *mark_rotated {
            marked.push(hash.clone());
            marked_at.push(now);
        }
        if let Some(f) = refresh.family_id {
            families.push(f.0);
            presented.push(hash);
            retired_at.push(now);
        }
        successors.extend([access, refresh]);
        events.extend(event);
    }
    if successors.is_empty() {
        return Ok(HashMap::new());
    }
    let q = sqlx::query(&ROTATE_ALL);
    let q = bind_events(bind_rows(q, &successors), &events)
        .bind(marked)
        .bind(marked_at)
        .bind(families)
        .bind(presented)
        .bind(retired_at);
    let mut retired: HashMap<Uuid, Vec<TokenHash>> = HashMap::new();
    for row in q.fetch_all(&mut *c).await? {
        let (hash, family): (Vec<u8>, Uuid) = (row.try_get(0)?, row.try_get(1)?);
        retired
            .entry(family)
            .or_default()
            .push(hash_from(hash, "token hash")?);
    }
    Ok(retired)
}

/// The round's writes ([`write`]): `$1`–`$16` the successors, `$17`–`$23` the events, then
/// the marks and the retirements.
static ROTATE_ALL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH t AS ({INSERT_TOKENS}), a AS ({INSERT_EVENTS}), \
         marked AS (UPDATE tokens SET rotated_at = COALESCE(tokens.rotated_at, v.at) \
         FROM unnest($24::bytea[], $25::timestamptz[]) AS v(hash, at) \
         WHERE tokens.hash = v.hash), \
         retired AS (UPDATE tokens SET revoked_at = v.at \
         FROM unnest($26::uuid[], $27::bytea[], $28::timestamptz[]) AS v(family, presented, at) \
         WHERE tokens.family_id = v.family AND tokens.kind = 'refresh' \
         AND tokens.hash <> v.presented AND tokens.rotated_at IS NULL \
         AND tokens.revoked_at IS NULL RETURNING tokens.hash, tokens.family_id) \
         SELECT hash, family_id FROM retired"
    )
});
