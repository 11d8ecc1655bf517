//! Group commit (issue 10, docs/benchmarks.md): writes that arrive together share one
//! transaction and one commit, and each caller still waits for the commit of its own write
//! before it answers, so nothing is acknowledged before it is durable.
//!
//! One task per store takes the first waiting write, then every write queued behind it (up to
//! a bound), and hands them to the adapter's [`BatchWrite::write`] as one all-or-nothing
//! transaction. While that commits, the next batch gathers. There is no timer: a lone write is
//! committed at once, and batches grow only when requests really overlap.
//!
//! A batch that fails as a whole (one write breaking a constraint, say) is retried one write
//! at a time, so only the write at fault gets the error.

use std::sync::Arc;

use async_trait::async_trait;
use buzzgate_domain::StoreError;
use buzzgate_domain::ports::StoreResult;
use tokio::sync::{Semaphore, mpsc, oneshot};

/// Most writes in one batch.
pub const MAX_BATCH: usize = 256;

/// The histogram of batch sizes, by `writer` (docs/operations.md, "Metrics").
pub const BATCH_SIZE: &str = "buzzgate_group_commit_batch_size";

/// A writer's label: its crate and type, e.g. `sqlite_appender` for
/// `buzzgate_store_sqlite::appends::Appender` (a bounded set: one per writer type).
fn writer_label(type_name: &str) -> String {
    let plain = type_name.split('<').next().unwrap_or(type_name);
    let mut parts = plain.split("::");
    let krate = parts.next().unwrap_or("");
    let krate = krate
        .strip_prefix("buzzgate_store_")
        .or_else(|| krate.strip_prefix("buzzgate_"))
        .unwrap_or(krate);
    let ty = plain.rsplit("::").next().unwrap_or(plain);
    format!("{krate}_{}", ty.to_ascii_lowercase())
}

/// An adapter's writer of batches.
#[async_trait]
pub trait BatchWrite<T, R>: Send + Sync + 'static {
    /// Writes every item in **one** transaction (all or none) and returns one outcome per
    /// item, in order.
    async fn write(&self, items: &[T]) -> StoreResult<Vec<R>>;
}

type Job<T, R> = (T, oneshot::Sender<StoreResult<R>>);

/// The handle writes are submitted through. Cheap to clone; the task ends when the last
/// handle is dropped.
pub struct GroupCommit<T, R> {
    tx: mpsc::Sender<Job<T, R>>,
}

impl<T, R> Clone for GroupCommit<T, R> {
    fn clone(&self) -> Self {
        GroupCommit {
            tx: self.tx.clone(),
        }
    }
}

impl<T, R> std::fmt::Debug for GroupCommit<T, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit").finish_non_exhaustive()
    }
}

impl<T: Send + Sync + 'static, R: Send + 'static> GroupCommit<T, R> {
    /// Starts the batching task on the current Tokio runtime, with one batch in flight at a
    /// time.
    pub fn start(writer: impl BatchWrite<T, R>) -> Self {
        Self::start_with(writer, 1)
    }

    /// As [`GroupCommit::start`], with up to `in_flight` batches committing at once (a
    /// database that commits concurrent transactions together, like Postgres, gains from a
    /// few; SQLite has one writer and gains nothing).
    pub fn start_with<W: BatchWrite<T, R>>(writer: W, in_flight: usize) -> Self {
        let (tx, rx) = mpsc::channel(MAX_BATCH * 4);
        let sizes =
            metrics::histogram!(BATCH_SIZE, "writer" => writer_label(std::any::type_name::<W>()));
        tokio::spawn(run(Arc::new(writer), rx, in_flight.max(1), sizes));
        GroupCommit { tx }
    }

    /// Submits one write and waits until the batch holding it has committed.
    pub async fn submit(&self, item: T) -> StoreResult<R> {
        let (done, outcome) = oneshot::channel();
        self.tx
            .send((item, done))
            .await
            .map_err(|_| StoreError::Unavailable("the group-commit task has stopped".into()))?;
        outcome
            .await
            .map_err(|_| StoreError::Unavailable("the group-commit task has stopped".into()))?
    }
}

/// Gathers a batch as soon as a commit slot is free (so while every slot is busy, writes
/// queue up for the next batch), and commits it on its own task.
async fn run<T: Send + Sync + 'static, R: Send + 'static>(
    writer: Arc<dyn BatchWrite<T, R>>,
    mut rx: mpsc::Receiver<Job<T, R>>,
    in_flight: usize,
    sizes: metrics::Histogram,
) {
    let slots = Arc::new(Semaphore::new(in_flight));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let Some((item, done)) = rx.recv().await else {
            return;
        };
        let mut items: Vec<T> = vec![item];
        let mut waiting: Vec<oneshot::Sender<StoreResult<R>>> = vec![done];
        while items.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok((item, done)) => {
                    items.push(item);
                    waiting.push(done);
                }
                Err(_) => break,
            }
        }
        sizes.record(items.len() as f64);
        let writer = writer.clone();
        tokio::spawn(async move {
            commit(writer.as_ref(), items, waiting).await;
            drop(slot);
        });
    }
}

/// Commits one batch and answers each of its writers.
async fn commit<T: Send + Sync + 'static, R: Send + 'static>(
    writer: &dyn BatchWrite<T, R>,
    items: Vec<T>,
    mut waiting: Vec<oneshot::Sender<StoreResult<R>>>,
) {
    match writer.write(&items).await {
        Ok(outcomes) if outcomes.len() == items.len() => {
            for (done, r) in waiting.drain(..).zip(outcomes) {
                let _ = done.send(Ok(r));
            }
        }
        Ok(_) => {
            for done in waiting.drain(..) {
                let _ = done.send(Err(StoreError::Internal(
                    "a batch writer returned the wrong number of outcomes".into(),
                )));
            }
        }
        Err(e) if items.len() == 1 => {
            if let Some(done) = waiting.pop() {
                let _ = done.send(Err(e));
            }
        }
        Err(_) => {
            // Find the write at fault: each alone, in its own transaction.
            for (item, done) in items.iter().zip(waiting.drain(..)) {
                let r = writer
                    .write(std::slice::from_ref(item))
                    .await
                    .and_then(|mut v| {
                        v.pop()
                            .ok_or_else(|| StoreError::Internal("no outcome".into()))
                    });
                let _ = done.send(r);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Records each batch it is given; refuses any batch holding a negative number.
    #[derive(Default)]
    struct Recorder {
        batches: Mutex<Vec<Vec<i64>>>,
    }

    #[async_trait]
    impl BatchWrite<i64, i64> for Arc<Recorder> {
        async fn write(&self, items: &[i64]) -> StoreResult<Vec<i64>> {
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            if items.iter().any(|i| *i < 0) {
                return Err(StoreError::Conflict("negative".into()));
            }
            self.batches.lock().unwrap().push(items.to_vec());
            Ok(items.iter().map(|i| i * 10).collect())
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn overlapping_writes_share_batches_and_each_gets_its_own_outcome() {
        let rec = Arc::new(Recorder::default());
        let gc = GroupCommit::start(rec.clone());
        let tasks: Vec<_> = (0..200i64)
            .map(|i| {
                let gc = gc.clone();
                tokio::spawn(async move { (i, gc.submit(i).await) })
            })
            .collect();
        for t in tasks {
            let (i, r) = t.await.unwrap();
            assert_eq!(r.unwrap(), i * 10);
        }
        let batches = rec.batches.lock().unwrap();
        let written: usize = batches.iter().map(Vec::len).sum();
        assert_eq!(written, 200, "every write committed exactly once");
        assert!(
            batches.len() < 200,
            "overlapping writes were batched: {} batches",
            batches.len()
        );
        assert!(batches.iter().all(|b| b.len() <= MAX_BATCH));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_write_fails_alone() {
        let rec = Arc::new(Recorder::default());
        let gc = GroupCommit::start(rec.clone());
        let tasks: Vec<_> = (-3..30i64)
            .map(|i| {
                let gc = gc.clone();
                tokio::spawn(async move { (i, gc.submit(i).await) })
            })
            .collect();
        for t in tasks {
            let (i, r) = t.await.unwrap();
            if i < 0 {
                assert!(matches!(r, Err(StoreError::Conflict(_))), "{i}: {r:?}");
            } else {
                assert_eq!(r.unwrap(), i * 10, "{i}");
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn several_batches_may_commit_at_once() {
        let rec = Arc::new(Recorder::default());
        let gc = GroupCommit::start_with(rec.clone(), 4);
        let tasks: Vec<_> = (0..300i64)
            .map(|i| {
                let gc = gc.clone();
                tokio::spawn(async move { (i, gc.submit(i).await) })
            })
            .collect();
        for t in tasks {
            let (i, r) = t.await.unwrap();
            assert_eq!(r.unwrap(), i * 10);
        }
        let mut all: Vec<i64> = rec.batches.lock().unwrap().concat();
        all.sort_unstable();
        assert_eq!(all, (0..300).collect::<Vec<_>>(), "each write exactly once");
    }

    #[test]
    fn writers_are_named_by_crate_and_type() {
        assert_eq!(
            writer_label("buzzgate_store_sqlite::appends::Appender"),
            "sqlite_appender"
        );
        assert_eq!(
            writer_label("buzzgate_store_postgres::buzz::Spender"),
            "postgres_spender"
        );
        assert_eq!(
            writer_label("alloc::sync::Arc<buzzgate_local::batch::tests::Recorder>"),
            "alloc_arc"
        );
    }

    #[tokio::test]
    async fn a_lone_write_is_committed_at_once() {
        let rec = Arc::new(Recorder::default());
        let gc = GroupCommit::start(rec.clone());
        assert_eq!(gc.submit(7).await.unwrap(), 70);
        assert_eq!(rec.batches.lock().unwrap().as_slice(), &[vec![7]]);
    }
}
