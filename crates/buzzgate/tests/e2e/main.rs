//! End-to-end tests over real HTTP: the `buzzgate` server on an ephemeral port, once over
//! SQLite and once over Postgres + Redis (skipped with a line when those are down, a failure
//! under `BUZZGATE_REQUIRE_SERVICES=1`).

mod attacks;
mod documents;
mod flows;
mod harness;
mod key_rotation;
mod mcp;
mod metrics;
mod pages;
mod resources;

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
    buzz_account_for_the_civitai_sdk,
    oidc_scopes_sign_a_user_in,
    cap_bodies_and_the_cronos_dialect,
);

// Issue 8's security fixes, each proved by its attack (SPEC 10, 13).
scenarios!(
    mod attacks_e2e in attacks;
    consent_revoke_kills_unused_codes,
    consent_revoke_kills_approved_device_grants,
    spend_after_consent_revoke_fails_closed,
    refresh_after_consent_revoke_fails,
    owner_client_credentials_spend_is_bounded_by_owner_cap,
    third_party_token_cannot_rotate_owners_app_secret,
    third_party_token_cannot_delete_owners_app,
    third_party_token_cannot_list_apps_consents_or_keys,
    disabled_app_gets_no_tokens_by_device_flow,
    disabled_app_cannot_refresh,
    disabled_app_cannot_exchange_a_code,
    disabled_app_cannot_use_client_credentials,
    csrf_charset_json_device_approve_is_refused,
    session_text_plain_rotate_secret_is_refused,
    cross_site_session_change_is_refused,
    introspection_of_another_apps_token_is_inactive,
    id_token_auth_time_is_the_sign_in_time,
    concurrent_code_redemption_has_exactly_one_winner,
    device_start_checks_public_client_origins,
    cors_preflight_does_not_echo_unknown_origins,
    resource_server_cannot_refund_another_servers_spend,
    idempotency_keys_are_scoped_to_the_resource_server,
    revocation_is_not_cached_back,
    json_duplicate_keys_are_refused,
    signed_amount_is_refused,
    caller_table_refusals,
);

// The attacks that need their own limits, proxies or grace window, on both backends.
scenarios!(
    mod attacks_e2e_configured in attacks;
    rotated_refresh_token_is_inactive_after_grace with one_second_grace,
    strangers_cannot_lock_out_a_client with client_auth_limits,
    sign_in_is_throttled_per_account_and_ip with login_limits,
    spoofed_forwarded_for_does_not_bypass_the_revoke_limit with revoke_limit_behind_one_proxy,
    forwarded_for_is_ignored_without_trusted_proxies with revoke_limit_without_proxies,
);

mod limits {
    crate::scenarios!(
        @test token_rate_limit_answers_429_with_retry_after,
        Sqlite,
        |c| c.rate_limit_token = Some(3),
        crate::flows::rate_limited
    );
    crate::scenarios!(
        @test token_rate_limit_is_shared_through_redis,
        PostgresRedis,
        |c| c.rate_limit_token = Some(3),
        crate::flows::rate_limited
    );
    crate::scenarios!(
        @test refresh_retry_inside_grace_succeeds,
        Sqlite,
        |c| c.refresh_grace_seconds = 10,
        crate::flows::grace_retry
    );
}

// The pages people use (docs/pages.md), without JavaScript.
scenarios!(
    mod pages_e2e in pages;
    pages_manage_an_app,
    pages_consent_cap_and_connected_apps,
    pages_api_keys,
    pages_device_code_any_case,
    admin_pages,
    signup_is_off_by_default,
    signup_when_open with open_signup,
    pages_are_locked_down,
);

// Resource indicators (RFC 8707, issue 13).
scenarios!(
    mod resources_e2e in resources;
    resource_indicators_set_the_audience,
);

// Client ID metadata documents (SPEC 14, issue 13).
scenarios!(
    mod documents_e2e in documents;
    a_metadata_document_client_completes_the_flow with cimd_loopback,
    http_documents_are_refused_by_default,
);

// Seed 000's MCP adapter and proxy mode (docs/mcp.md).
scenarios!(
    mod mcp_e2e in mcp;
    mcp_tools_run_the_flow with with_mcp,
    mcp_refuses_browser_origins with with_mcp,
    account_mcp_server_is_a_protected_resource with with_mcp,
    dynamic_registration_for_mcp_clients with with_mcp,
    registration_can_be_closed with with_mcp_registration_off,
);
// Prometheus metrics after traffic (issue 15, docs/operations.md "Metrics").
scenarios!(
    mod metrics_e2e in metrics;
    metrics_after_traffic with scrape_token,
    metrics_can_be_turned_off with metrics_off,
);

mod proxy {
    crate::scenarios!(
        @test proxy_fronts_an_upstream,
        Sqlite,
        |_: &mut buzzgate::Config| {},
        crate::mcp::proxy_fronts_an_upstream
    );
    crate::scenarios!(
        @test proxy_survives_a_failing_upstream,
        Sqlite,
        |_: &mut buzzgate::Config| {},
        crate::mcp::proxy_survives_a_failing_upstream
    );
}

mod independent_client;
