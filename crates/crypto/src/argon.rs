//! argon2id password hashing for the built-in directory (PHC strings, OWASP-recommended
//! parameters: m=19 MiB, t=2, p=1), run where it cannot hurt the server: on Tokio's blocking
//! pool, behind a semaphore sized to the machine's cores. One verification costs tens of
//! milliseconds of CPU; on an async worker thirty-two wrong passwords at once would stall
//! every other request (health checks included) for hundreds of milliseconds.

use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use async_trait::async_trait;
use buzzgate_domain::error::Error;
use buzzgate_domain::ports::PasswordHasher;
use tokio::sync::Semaphore;

fn argon2() -> Argon2<'static> {
    // The defaults of the argon2 crate are OWASP's first recommendation (m=19456, t=2, p=1).
    Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::default())
}

/// argon2id off the async runtime. Cheap to clone (the permits are shared).
#[derive(Debug, Clone)]
pub struct Argon2Hasher {
    permits: Arc<Semaphore>,
}

impl Default for Argon2Hasher {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Argon2Hasher::with_concurrency(cores)
    }
}

impl Argon2Hasher {
    /// At most `n` (≥ 1) hashes at a time; more wait their turn without holding a thread.
    pub fn with_concurrency(n: usize) -> Self {
        Argon2Hasher {
            permits: Arc::new(Semaphore::new(n.max(1))),
        }
    }

    /// Runs `work` on the blocking pool once a permit is free.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Error> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| Error::ServerError("password hasher is shut down".into()))?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|_| Error::ServerError("password hashing failed".into()))
    }
}

#[async_trait]
impl PasswordHasher for Argon2Hasher {
    async fn hash(&self, password: &str, salt: [u8; 16]) -> Result<String, Error> {
        let password = password.to_owned();
        self.run(move || {
            let salt = SaltString::encode_b64(&salt)
                .map_err(|_| Error::ServerError("salt encoding failed".into()))?;
            argon2()
                .hash_password(password.as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(|_| Error::ServerError("password hashing failed".into()))
        })
        .await?
    }

    async fn verify(&self, password: &str, phc: &str) -> bool {
        let (password, phc) = (password.to_owned(), phc.to_owned());
        self.run(move || {
            PasswordHash::new(&phc)
                .is_ok_and(|h| argon2().verify_password(password.as_bytes(), &h).is_ok())
        })
        .await
        .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[tokio::test]
    async fn argon2id_hashes_verify_and_reject_wrong_passwords() {
        let h = Argon2Hasher::default();
        let phc = h.hash("correct horse battery", [7u8; 16]).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(h.verify("correct horse battery", &phc).await);
        assert!(!h.verify("correct horse batterx", &phc).await);
        assert!(!h.verify("anything", "not a phc string").await);
    }

    /// On a single-threaded runtime, work done inline would freeze every other task until it
    /// finished. Here a ticker keeps running while eight verifications are in flight, so the
    /// hashing is not on the runtime's thread.
    #[tokio::test(flavor = "current_thread")]
    async fn hashing_never_blocks_the_async_runtime() {
        let h = Argon2Hasher::with_concurrency(1);
        let phc = h.hash("correct horse battery", [1u8; 16]).await.unwrap();
        let ticks = Arc::new(AtomicU64::new(0));
        let t = ticks.clone();
        let ticker = tokio::spawn(async move {
            loop {
                t.fetch_add(1, Ordering::Relaxed);
                tokio::task::yield_now().await;
            }
        });
        let verifies: Vec<_> = (0..8)
            .map(|_| {
                let (h, phc) = (h.clone(), phc.clone());
                tokio::spawn(async move { h.verify("wrong password!", &phc).await })
            })
            .collect();
        for v in verifies {
            assert!(!v.await.unwrap());
        }
        ticker.abort();
        assert!(
            ticks.load(Ordering::Relaxed) > 8,
            "the runtime kept serving other tasks while passwords were checked"
        );
    }

    #[tokio::test]
    async fn concurrency_is_bounded_by_the_permits() {
        let h = Argon2Hasher::with_concurrency(2);
        assert_eq!(h.permits.available_permits(), 2);
        let held = h.permits.clone().acquire_many_owned(2).await.unwrap();
        let h2 = h.clone();
        let waiting = tokio::spawn(async move { h2.verify("x", "not a phc").await });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "no permit, no hashing");
        drop(held);
        assert!(!waiting.await.unwrap());
    }
}
