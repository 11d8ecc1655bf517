//! End-to-end tests over real HTTP: the `buzzgate` server on an ephemeral port, once over
//! SQLite and once over Postgres + Redis (skipped with a line when those are down, a failure
//! under `BUZZGATE_REQUIRE_SERVICES=1`).

mod flows;
mod harness;

scenarios!(
    discovery_advertises_what_works,
    browser_flow_with_pkce_refresh_reuse_and_revoke,
    id_token_when_nonce,
    client_credentials_acts_as_owner,
    device_flow_pending_then_approved,
    introspection_for_resource_servers,
    buzz_spend_against_a_cap,
    app_lifecycle_rotate_and_delete,
    connected_apps_revoke,
    api_keys_are_bearers,
    bad_input_is_4xx_never_500,
    insufficient_scope_contract,
    authorize_errors_redirect_or_json,
    readiness,
);

mod limits {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn token_rate_limit_answers_429_with_retry_after() {
        let Some(env) = crate::harness::env(crate::harness::Backend::Sqlite, |c| {
            c.rate_limit_token = Some(3)
        })
        .await
        else {
            return;
        };
        crate::flows::rate_limited(&env).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn token_rate_limit_is_shared_through_redis() {
        let Some(env) = crate::harness::env(crate::harness::Backend::PostgresRedis, |c| {
            c.rate_limit_token = Some(3)
        })
        .await
        else {
            return;
        };
        crate::flows::rate_limited(&env).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn refresh_retry_inside_grace_succeeds() {
        let Some(env) = crate::harness::env(crate::harness::Backend::Sqlite, |c| {
            c.refresh_grace_seconds = 10
        })
        .await
        else {
            return;
        };
        crate::flows::grace_retry(&env).await;
    }
}

mod independent_client;
