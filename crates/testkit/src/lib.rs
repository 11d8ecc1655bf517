//! One contract test suite for every adapter of Buzzgate's ports (Dex-style conformance):
//! each case is a plain `async fn` over [`Ports`], and [`contract_suite!`] turns them into
//! `#[tokio::test]`s for one adapter. A case whose ports an adapter does not provide is a
//! no-op for it. Concurrency cases run 64 real tasks on a multi-threaded runtime.

pub mod cases;
mod fixtures;

use std::sync::Arc;

use buzzgate_domain::ports::{
    AuditLog, BuzzStore, ClientStore, CodeStore, ConsentStore, DeviceStore, RateLimiter,
    SessionStore, TokenCache, TokenStore, UserStore,
};

pub use fixtures::*;

/// The ports one adapter provides; `None` where it does not implement one.
#[derive(Clone, Default)]
pub struct Ports {
    pub clients: Option<Arc<dyn ClientStore>>,
    pub consents: Option<Arc<dyn ConsentStore>>,
    pub tokens: Option<Arc<dyn TokenStore>>,
    pub codes: Option<Arc<dyn CodeStore>>,
    pub devices: Option<Arc<dyn DeviceStore>>,
    pub users: Option<Arc<dyn UserStore>>,
    pub sessions: Option<Arc<dyn SessionStore>>,
    pub buzz: Option<Arc<dyn BuzzStore>>,
    pub audit: Option<Arc<dyn AuditLog>>,
    pub rate_limiter: Option<Arc<dyn RateLimiter>>,
    pub cache: Option<Arc<dyn TokenCache>>,
    /// A second node's cache over the same backend, for revocation fan-out.
    pub cache_peer: Option<Arc<dyn TokenCache>>,
    /// The same backend reached through a second, independent connection pool: a second
    /// node. Concurrency cases split their tasks between the two.
    pub node2: Option<Box<Ports>>,
}

impl std::fmt::Debug for Ports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ports").finish_non_exhaustive()
    }
}

/// A store of the OAuth grants' ports.
pub trait GrantStores: ClientStore + ConsentStore + TokenStore + CodeStore + DeviceStore {}
impl<S: ClientStore + ConsentStore + TokenStore + CodeStore + DeviceStore> GrantStores for S {}

/// A store of every durable port (the SQL adapters' shape).
pub trait DurableStore:
    GrantStores + UserStore + SessionStore + BuzzStore + AuditLog + 'static
{
}
impl<S: GrantStores + UserStore + SessionStore + BuzzStore + AuditLog + 'static> DurableStore
    for S
{
}

impl Ports {
    /// Every durable port over one store (the SQL adapters' shape). Add `rate_limiter` for
    /// a store that also shares rate limits (Postgres).
    pub fn durable<S: DurableStore>(store: Arc<S>) -> Ports {
        Ports {
            clients: Some(store.clone()),
            consents: Some(store.clone()),
            tokens: Some(store.clone()),
            codes: Some(store.clone()),
            devices: Some(store.clone()),
            users: Some(store.clone()),
            sessions: Some(store.clone()),
            buzz: Some(store.clone()),
            audit: Some(store),
            ..Ports::default()
        }
    }

    /// Every port over one in-memory store (the reference adapter), on the wall clock.
    pub fn memory() -> Ports {
        let store = Arc::new(buzzgate_domain::memory::MemoryStore::new(Arc::new(
            buzzgate_domain::ports::SystemClock,
        )));
        Ports {
            cache: Some(store.clone()),
            cache_peer: Some(store.clone()),
            rate_limiter: Some(store.clone()),
            ..Ports::durable(store)
        }
    }

    /// The ports task `i` of a concurrency case uses: odd tasks go to the second node.
    pub fn node(&self, i: usize) -> &Ports {
        match &self.node2 {
            Some(n) if i % 2 == 1 => n,
            _ => self,
        }
    }
}

/// Whether an unreachable service fails the run (`BUZZGATE_REQUIRE_SERVICES=1`, set by CI).
pub fn services_required() -> bool {
    std::env::var("BUZZGATE_REQUIRE_SERVICES")
        .is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

/// Prints `SKIP <what>: <why>` and returns `None`; panics instead when services are required.
pub fn skip<T>(what: &str, why: &str) -> Option<T> {
    if services_required() {
        panic!("{what} is required (BUZZGATE_REQUIRE_SERVICES=1) but unavailable: {why}");
    }
    eprintln!("SKIP {what}: {why}");
    None
}

/// `TEST_DATABASE_URL`, or the local default.
pub fn postgres_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// `TEST_REDIS_URL`, or the local default.
pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Expands to one `#[tokio::test]` per contract case, in a module named `$name`.
/// `$fixture` is an async expression yielding `Option<Ports>` (`None`: skipped).
#[macro_export]
macro_rules! contract_suite {
    ($name:ident, $fixture:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            $crate::contract_suite!(@cases $fixture;
                clients_round_trip, client_delete_cascades, consents_round_trip,
                consent_peek_sees_the_store_s_own_writes,
                origins_registered_by_public_clients, concurrent_client_edits_are_never_lost,
                concurrent_consent_edits_are_never_lost, clients_search,
                tokens_insert_find_revoke, family_revocation_leaves_a_tombstone,
                rotation_applies_the_decision, rotation_reuse_after_grace_writes_nothing,
                rotation_of_unknown_token_is_rejected, revoke_for_user_client,
                revoke_for_user_takes_every_token,
                concurrent_rotations_racing_a_user_revocation_leave_no_live_head,
                concurrent_inserts_racing_a_family_revocation_leave_no_live_token,
                api_keys_list_and_revoke,
                token_sweep_is_bounded, concurrent_rotations_inside_grace_all_rotate,
                concurrent_rotations_without_grace_have_one_winner,
                concurrent_rotations_of_many_families_are_decided_apart,
                codes_redeem_once, concurrent_redeemers_have_one_winner, code_sweep_is_bounded,
                devices_resolve_and_poll, concurrent_polls_issue_once, device_user_codes_are_unique,
                users_round_trip, sessions_round_trip,
                buzz_credit_and_history, buzz_spend_replay_and_conflict, buzz_refund_once,
                buzz_idempotency_keys_are_scoped_to_the_resource_server,
                buzz_net_spent_counts_what_was_not_refunded,
                buzz_window_spend, concurrent_spends_never_exceed_the_cap, concurrent_duplicate_spends_charge_once,
                spend_audited_records_only_charges, spend_reports_its_windows,
                audit_query, insert_audited_records_the_outcome,
                rotate_refresh_audited_records_the_rotation,
                rate_limit_fixed_window, rate_limit_count_each_is_count_per_key,
                concurrent_hits_respect_the_limit, rate_limit_peek_lags_only_other_nodes,
                cache_round_trip, cache_put_after_invalidate_is_refused,
                concurrent_puts_never_outlive_an_invalidation,
                cache_invalidation_reaches_peer);
        }
    };
    (@cases $fixture:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let Some(ports) = $fixture.await else { return };
                $crate::cases::$case(&ports).await;
            }
        )*
    };
}
