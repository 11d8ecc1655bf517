//! Client ID metadata documents (SPEC 14, draft-ietf-oauth-client-id-metadata-document):
//! when a `client_id` is an https URL with a path, the client is the JSON document at that
//! URL. This module holds the rules for the document itself; fetching it safely is the
//! `ClientMetadataDocuments` port's (`crates/fetch`). Such clients are public, unowned and
//! unverified, and their redirect URIs are matched exactly.

use serde::Deserialize;
use time::OffsetDateTime;

use super::dynamic::DynamicRegistration;
use super::{Client, ClientId};
use crate::catalogue::Catalogue;
use crate::error::Error;
use crate::ids::UserId;

/// Whether `client_id` names a metadata document: an https URL with a path (and, with the
/// development switch, a loopback http one), short enough to be a client ID.
pub fn is_document_url(client_id: &str, allow_http_loopback: bool) -> bool {
    // Every absolute URL has a `:` after its scheme: an app's issued id (a token) is told
    // apart without a parse, on every client authentication.
    if client_id.len() > ClientId::MAX_LEN || !client_id.contains(':') {
        return false;
    }
    let Ok(url) = url::Url::parse(client_id) else {
        return false;
    };
    let scheme_ok = match url.scheme() {
        "https" => true,
        "http" => {
            allow_http_loopback
                && matches!(url.host(), Some(url::Host::Ipv4(ip)) if ip.is_loopback())
        }
        _ => false,
    };
    scheme_ok && url.path().len() > 1 && url.fragment().is_none() && url.username().is_empty()
}

/// The host serving the metadata document `client_id` names, if it names one: what the
/// consent page shows as the app's origin.
pub fn document_host(client_id: &str) -> Option<String> {
    let url = url::Url::parse(client_id).ok()?;
    matches!(url.scheme(), "https" | "http")
        .then(|| url.host_str().map(str::to_owned))
        .flatten()
}

/// The fields of a document the server reads (others are ignored).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct Document {
    client_id: Option<String>,
    client_name: Option<String>,
    redirect_uris: Vec<String>,
    token_endpoint_auth_method: Option<String>,
    grant_types: Option<Vec<String>>,
    response_types: Option<Vec<String>>,
    scope: Option<String>,
}

fn bad(why: impl Into<String>) -> Error {
    Error::InvalidClient {
        description: format!("Invalid client metadata document: {}", why.into()).into(),
        basic: false,
    }
}

/// The client the document at `url` describes, or `invalid_client` saying why: the
/// document must be JSON whose `client_id` is exactly `url`, with a `client_name` and
/// `redirect_uris`; it is a public client (`token_endpoint_auth_method` absent or `none`),
/// registered as of `now`, owned by nobody.
pub fn client_of(
    url: &str,
    body: &[u8],
    catalogue: &Catalogue,
    now: OffsetDateTime,
) -> Result<Client, Error> {
    let doc: Document = serde_json::from_slice(body).map_err(|_| bad("it is not a JSON object"))?;
    if doc.client_id.as_deref() != Some(url) {
        return Err(bad("its client_id is not its own URL"));
    }
    let name = doc
        .client_name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| bad("it has no client_name"))?
        .to_owned();
    if doc.redirect_uris.is_empty() {
        return Err(bad("it has no redirect_uris"));
    }
    match doc.token_endpoint_auth_method.as_deref() {
        None | Some("none") => {}
        Some(other) => {
            return Err(bad(format!(
                "token_endpoint_auth_method `{}` is not supported (none)",
                other.chars().take(40).collect::<String>()
            )));
        }
    }
    let id = ClientId::parse(url).ok_or_else(|| bad("its URL cannot be a client ID"))?;
    let registration = DynamicRegistration {
        redirect_uris: doc.redirect_uris,
        client_name: Some(name),
        token_endpoint_auth_method: Some("none".into()),
        grant_types: doc.grant_types,
        response_types: doc.response_types,
        scope: doc.scope,
        ..DynamicRegistration::default()
    }
    .validate(catalogue)
    .map_err(|e| bad(e.description()))?
    .validate(catalogue)
    .map_err(|e| bad(e.description()))?;
    Ok(Client::new(id, UserId::NOBODY, registration, None, now))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const URL: &str = "https://agent.example/oauth/client.json";
    const T0: OffsetDateTime = datetime!(2026-12-02 00:00:00 UTC);

    fn doc(v: serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(&v).unwrap()
    }

    #[test]
    fn document_urls_are_https_with_a_path() {
        assert!(is_document_url(URL, false));
        assert!(!is_document_url("https://agent.example/", false));
        assert!(!is_document_url("http://agent.example/c.json", false));
        assert!(!is_document_url(
            "8f14e45f-ceea-467f-a8f0-6c4f8b2f3c10",
            false
        ));
        assert!(!is_document_url("http://127.0.0.1:8000/c.json", false));
        assert!(is_document_url("http://127.0.0.1:8000/c.json", true));
        assert!(!is_document_url(
            &format!("https://a.example/{}", "x".repeat(200)),
            false
        ));
    }

    #[test]
    fn a_document_describes_a_public_unowned_client() {
        let c = Catalogue::civitai();
        let client = client_of(
            URL,
            &doc(serde_json::json!({
                "client_id": URL,
                "client_name": "Agent",
                "redirect_uris": ["http://127.0.0.1:33418/callback"],
                "scope": "UserRead BuzzRead",
                "logo_uri": "https://agent.example/logo.png"
            })),
            &c,
            T0,
        )
        .unwrap();
        assert_eq!(client.id.as_str(), URL);
        assert!(client.is_unowned() && !client.is_verified && !client.is_confidential());
        assert_eq!(client.name, "Agent");
    }

    #[test]
    fn a_lying_or_incomplete_document_is_refused() {
        let c = Catalogue::civitai();
        for (why, body) in [
            (
                "another client_id",
                doc(
                    serde_json::json!({"client_id": "https://evil.example/c.json", "client_name": "A", "redirect_uris": ["https://a.example/cb"]}),
                ),
            ),
            (
                "no client_id",
                doc(
                    serde_json::json!({"client_name": "A", "redirect_uris": ["https://a.example/cb"]}),
                ),
            ),
            (
                "no name",
                doc(
                    serde_json::json!({"client_id": URL, "redirect_uris": ["https://a.example/cb"]}),
                ),
            ),
            (
                "no redirect",
                doc(serde_json::json!({"client_id": URL, "client_name": "A"})),
            ),
            (
                "a secret",
                doc(
                    serde_json::json!({"client_id": URL, "client_name": "A", "redirect_uris": ["https://a.example/cb"], "token_endpoint_auth_method": "private_key_jwt"}),
                ),
            ),
            (
                "plain http redirect",
                doc(
                    serde_json::json!({"client_id": URL, "client_name": "A", "redirect_uris": ["http://a.example/cb"]}),
                ),
            ),
            ("not JSON", b"<html>".to_vec()),
        ] {
            assert!(
                matches!(
                    client_of(URL, &body, &c, T0),
                    Err(Error::InvalidClient { .. })
                ),
                "{why}"
            );
        }
    }
}
