//! Buzzgate's fuzz targets as plain functions (issue 14, item 3). Each `pub fn <target>(data)`
//! feeds arbitrary bytes to the production parser the server uses, must never panic, and
//! checks the parser's invariants: a violated invariant is a panic, which is how libFuzzer
//! (`fuzz/fuzz_targets/<target>.rs`) and the stable replay test (`tests/replay.rs`) report it.
//!
//! The targets: [`scope`], [`redirect_uri`], [`token_form`], [`token_json`], [`buzz_limit`]
//! and [`cimd`]; [`TARGETS`] lists them by name, as the corpus directories are named.

use std::sync::OnceLock;

use axum::http::{HeaderMap, HeaderValue, header};
use buzzgate_domain::Catalogue;
use buzzgate_domain::buzz::BuzzLimit;
use buzzgate_domain::client::document::{client_of, document_host, is_document_url};
use buzzgate_domain::client::{ClientKind, RedirectUri, match_redirect_uri};
use buzzgate_domain::scope::Scope;
use buzzgate_domain::service::tokens::GrantRequest;
use buzzgate_http::auth::client_auth;
use buzzgate_http::params::{Params, REPEATABLE, parse_form, parse_json_params};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use time::OffsetDateTime;
use time::macros::datetime;

/// A fuzz target: arbitrary bytes in, a panic on a bug.
pub type Target = fn(&[u8]);

/// Every target by name (the names of `fuzz/fuzz_targets/*.rs` and `fuzz/corpus/*/`).
pub const TARGETS: [(&str, Target); 6] = [
    ("scope", scope),
    ("redirect_uri", redirect_uri),
    ("token_form", token_form),
    ("token_json", token_json),
    ("buzz_limit", buzz_limit),
    ("cimd", cimd),
];

/// A fixed instant, so a run is reproducible (window starts, registration times).
const NOW: OffsetDateTime = datetime!(2026-12-06 12:34:56 UTC);

/// The default catalogue (Civitai's scopes), built once: what a server without a custom
/// catalogue parses requests with.
fn catalogue() -> &'static Catalogue {
    static CATALOGUE: OnceLock<Catalogue> = OnceLock::new();
    CATALOGUE.get_or_init(Catalogue::civitai)
}

/// Text as a request would carry it: a form or JSON value is always valid UTF-8 by the time
/// it reaches these parsers, so invalid sequences are replaced rather than skipped.
fn text(data: &[u8]) -> String {
    String::from_utf8_lossy(data).into_owned()
}

/// Scope strings: `Catalogue::parse` (a decimal mask or names, for owners and API keys),
/// `Catalogue::parse_request` (a request's `scope` with OIDC names), `parse_permissions` and
/// `Scope::from_decimal`.
///
/// Invariants: a parsed scope holds only declared bits; it parses back to itself from its
/// decimal form and from its names; a request's scope parses back to itself from
/// [`buzzgate_domain::RequestedScope::to_form_value`] (what the consent form carries).
pub fn scope(data: &[u8]) {
    let s = text(data);
    let cat = catalogue();
    if let Ok(mask) = Scope::from_decimal(&s) {
        assert_eq!(
            Scope::from_decimal(&mask.to_decimal_string()),
            Ok(mask),
            "decimal round trip of {s:?}"
        );
    }
    if let Ok(v) = cat.parse(&s) {
        assert!(v.is_subset_of(cat.all()), "undeclared bits from {s:?}");
        assert_eq!(
            cat.parse(&v.to_decimal_string()),
            Ok(v),
            "decimal form of {s:?}"
        );
        if !v.is_empty() {
            let names = cat.names_string(v);
            assert_eq!(cat.parse(&names), Ok(v), "names {names:?} of {s:?}");
        }
        let _ = cat.name_of(v);
        let _ = cat.lines(v);
    }
    if let Ok(r) = cat.parse_request(&s) {
        assert!(
            r.scope.is_subset_of(cat.all()),
            "undeclared bits from {s:?}"
        );
        let form = r.to_form_value();
        assert_eq!(
            cat.parse_request(&form),
            Ok(r),
            "form value {form:?} of {s:?}"
        );
    }
    if let Ok(Some(v)) = cat.parse_permissions(&s) {
        assert!(v.is_subset_of(cat.all()), "undeclared bits from {s:?}");
    }
}

/// Redirect URIs: `RedirectUri::parse` and `match_redirect_uri`. The input is lines: every
/// line but the last is a registration (those that parse are registered), the last is the
/// requested URI.
///
/// Invariants (SPEC 3.1, RFC 8252): a parsed URI is kept byte for byte (`as_str`, `Display`,
/// and parsing it again gives the same kind); it is at most 2000 printable ASCII characters
/// with no backslash and no fragment; plain `http` only on a loopback host. A match is either
/// byte-equal to the requested URI, or both are loopback URIs of the same scheme with the
/// same text after the authority (any port, loopback hosts interchangeable), never anything
/// looser. A requested URI equal to a registered one always matches it.
pub fn redirect_uri(data: &[u8]) {
    let s = text(data);
    let mut lines: Vec<&str> = s.split('\n').collect();
    let requested = lines.pop().unwrap_or("");
    let mut registered = Vec::new();
    for line in lines.into_iter().chain([requested]) {
        let Ok(u) = RedirectUri::parse(line) else {
            continue;
        };
        assert_eq!(u.as_str(), line, "stored form of {line:?}");
        assert_eq!(u.to_string(), line, "displayed form of {line:?}");
        assert!(line.len() <= RedirectUri::MAX_LEN);
        assert!(
            line.bytes().all(|b| b.is_ascii_graphic()) && !line.contains(['\\', '#']),
            "unsafe characters accepted in {line:?}"
        );
        let again = RedirectUri::parse(u.as_str()).expect("a parsed URI parses again");
        assert_eq!(
            (again.kind(), again.is_loopback()),
            (u.kind(), u.is_loopback())
        );
        let scheme = line.split(':').next().unwrap_or("").to_ascii_lowercase();
        if scheme == "http" {
            assert!(
                u.is_loopback(),
                "plain http accepted off loopback: {line:?}"
            );
        }
        registered.push(u);
    }
    // The requested line was pushed last if it parsed; it is not registered.
    if RedirectUri::parse(requested).is_ok() {
        registered.pop();
    }
    match match_redirect_uri(&registered, requested) {
        Some(hit) if hit.as_str() == requested => {}
        Some(hit) => {
            let req = RedirectUri::parse(requested).expect("a loose match parses");
            assert!(
                hit.is_loopback() && req.is_loopback(),
                "non-loopback loose match: {requested:?} → {hit:?}"
            );
            let (hs, _, hrest) = split_authority(hit.as_str()).expect("hierarchical");
            let (rs, _, rrest) = split_authority(requested).expect("hierarchical");
            assert!(
                hs.eq_ignore_ascii_case(rs) && hrest == rrest,
                "loopback match with another scheme, path or query: {requested:?} → {hit:?}"
            );
        }
        None => assert!(
            registered.iter().all(|r| r.as_str() != requested),
            "registered URI {requested:?} not matched"
        ),
    }
}

/// `scheme://authority rest`, `rest` being the path and query as written.
fn split_authority(raw: &str) -> Option<(&str, &str, &str)> {
    let (scheme, after) = raw.split_once("://")?;
    let end = after.find(['/', '?', '#']).unwrap_or(after.len());
    Some((scheme, &after[..end], &after[end..]))
}

/// A token request body as `application/x-www-form-urlencoded`: `params::parse_form` (what
/// the `Params` extractor runs), then what `POST /token` does with the parameters before any
/// store is involved (grant type, grant fields, client authentication).
///
/// Invariants: the pairs, encoded again, parse to the same pairs; the same pairs sent as a
/// JSON body parse to the same parameters (the two body types are one contract); no
/// parameter but `resource` is repeated.
pub fn token_form(data: &[u8]) {
    let Ok(pairs) = parse_form(data) else {
        return;
    };
    check_pairs(&pairs);
    let encoded = form_encode(&pairs);
    let again = parse_form(encoded.as_bytes()).expect("re-encoded form parses");
    assert_eq!(again, pairs, "form round trip of {encoded:?}");
    let json = json_of(&pairs);
    let from_json = parse_json_params(json.as_bytes()).expect("the same pairs as JSON parse");
    assert_eq!(sorted(from_json), sorted(pairs.clone()), "as JSON: {json}");
    token_request(Params(pairs));
}

/// A token request body as `application/json`: `params::parse_json_params` (strict: no
/// repeated key at any depth), then the same steps as [`token_form`].
///
/// Invariants: the parameters, form-encoded, parse to the same parameters, and written back
/// as JSON parse to the same parameters; no parameter but `resource` is repeated.
pub fn token_json(data: &[u8]) {
    let Ok(pairs) = parse_json_params(data) else {
        return;
    };
    check_pairs(&pairs);
    let encoded = form_encode(&pairs);
    let from_form = parse_form(encoded.as_bytes()).expect("the same pairs as a form parse");
    assert_eq!(
        sorted(from_form),
        sorted(pairs.clone()),
        "as a form: {encoded:?}"
    );
    let json = json_of(&pairs);
    let again = parse_json_params(json.as_bytes()).expect("re-written JSON parses");
    assert_eq!(
        sorted(again),
        sorted(pairs.clone()),
        "JSON round trip of {json}"
    );
    token_request(Params(pairs));
}

fn check_pairs(pairs: &[(String, String)]) {
    for (i, (k, _)) in pairs.iter().enumerate() {
        assert!(!k.is_empty(), "empty parameter name kept");
        assert!(k.chars().count() <= 128, "overlong parameter name kept");
        if k != REPEATABLE {
            assert!(
                pairs[..i].iter().all(|(other, _)| other != k),
                "parameter {k:?} repeated"
            );
        }
    }
}

fn sorted(mut pairs: Vec<(String, String)>) -> Vec<(String, String)> {
    pairs.sort();
    pairs
}

fn form_encode(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                utf8_percent_encode(k, NON_ALPHANUMERIC),
                utf8_percent_encode(v, NON_ALPHANUMERIC)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// The pairs as a JSON object of strings (`resource` as an array when repeated).
fn json_of(pairs: &[(String, String)]) -> String {
    let mut map = serde_json::Map::new();
    for (k, v) in pairs {
        match map.get_mut(k) {
            Some(serde_json::Value::Array(items)) => items.push(v.clone().into()),
            Some(first) => *first = serde_json::Value::Array(vec![first.take(), v.clone().into()]),
            None => {
                map.insert(k.clone(), v.clone().into());
            }
        }
    }
    serde_json::Value::Object(map).to_string()
}

/// What `POST /token` does with its parameters before it needs a store
/// (`oauth::token_common`): the grant type, the grant's fields, the client's credentials
/// (from the body, and from a Basic header made of the `authorization` parameter).
fn token_request(params: Params) {
    if let Ok(kind) = GrantRequest::grant_type(params.get("grant_type")) {
        let _ = GrantRequest::from_fields(kind, |name| params.owned(name));
    }
    let _ = params.all("resource");
    let _ = params.flag("offline");
    let mut headers = HeaderMap::new();
    if let Ok(auth) = client_auth(&headers, &params) {
        let id = params.get("client_id").expect("a body client_id");
        assert_eq!(auth.client_id.as_str(), id, "client_id changed");
        assert_eq!(auth.secret.as_deref(), params.get("client_secret"));
    }
    if let Some(v) = params.get("authorization")
        && let Ok(h) = HeaderValue::from_str(&format!("Basic {v}"))
    {
        headers.insert(header::AUTHORIZATION, h);
        let _ = client_auth(&headers, &params);
    }
}

/// The Buzz budget JSON (`buzz_limit`, SPEC 15): `BuzzLimit::parse_json` and
/// `parse_form_field`, then what the server computes from a limit (window starts at a fixed
/// instant, labels, the consent page's period).
///
/// Invariants: a parsed limit is valid (at most 16 budgets, each valid); serialised to JSON
/// it parses to the same limit; a limit read as a period is rebuilt by `per_period`.
pub fn buzz_limit(data: &[u8]) {
    let s = text(data);
    let Ok(Some(limit)) = BuzzLimit::parse_form_field(Some(&s)) else {
        return;
    };
    limit.validate().expect("a parsed limit is valid");
    let json = serde_json::to_string(&limit).expect("a limit serialises");
    assert_eq!(
        BuzzLimit::parse_json(&json).as_ref(),
        Ok(&limit),
        "round trip through {json}"
    );
    for budget in limit.budgets() {
        if let Some(start) = budget.window_start(NOW) {
            assert!(start <= NOW, "a window starting after now: {budget:?}");
        }
        let _ = budget.window_label();
    }
    if let Some((amount, days)) = limit.as_period() {
        let rebuilt = BuzzLimit::per_period(amount, days).expect("a period rebuilds");
        assert_eq!(rebuilt.as_period(), Some((amount, days)));
    }
}

/// Client ID metadata documents (SPEC 14): `client::document::client_of`. When the input's
/// first line starts with `http`, it is the document's URL and the rest the body; otherwise
/// the whole input is the body of `https://agent.example/oauth/client.json`.
///
/// Invariants: an accepted document makes a public client whose ID is exactly its URL, with
/// at least one redirect URI, every one of which parses and matches itself exactly, and
/// whose allowed scopes are declared by the catalogue.
pub fn cimd(data: &[u8]) {
    const URL: &str = "https://agent.example/oauth/client.json";
    let (url, body) = match data.iter().position(|b| *b == b'\n') {
        Some(i) if data.starts_with(b"http") => (text(&data[..i]), &data[i + 1..]),
        _ => (URL.to_owned(), data),
    };
    let _ = is_document_url(&url, false);
    let _ = is_document_url(&url, true);
    let _ = document_host(&url);
    let Ok(client) = client_of(&url, body, catalogue(), NOW) else {
        return;
    };
    assert_eq!(client.id.as_str(), url, "client ID differs from the URL");
    assert_eq!(
        client.kind,
        ClientKind::Public,
        "a document client is public"
    );
    assert!(
        client.secret_hash.is_none(),
        "a document client has a secret"
    );
    assert!(!client.redirect_uris.is_empty(), "no redirect URIs");
    for u in &client.redirect_uris {
        let again = RedirectUri::parse(u.as_str()).expect("a registered URI parses");
        assert_eq!(&again, u);
        let hit = client
            .match_redirect_uri(u.as_str())
            .expect("matches itself");
        assert_eq!(hit.as_str(), u.as_str());
    }
    assert!(
        client.allowed_scopes.is_subset_of(catalogue().all()),
        "undeclared scope bits"
    );
    assert!(!client.name.trim().is_empty(), "a client without a name");
}
