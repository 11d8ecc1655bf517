//! Redirect URIs: parsing the three permitted shapes, and matching a requested URI against the
//! registered ones (exact, plus RFC 8252 loopback ports).

use std::fmt;

use serde::{Deserialize, Serialize};
use url::Url;

use crate::error::Error;

/// Which of the three permitted shapes a redirect URI has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RedirectKind {
    /// `https://…`, any host (including loopback).
    Https,
    /// `http://` on `localhost`, `127.0.0.1` or `[::1]` (RFC 8252 §7.3).
    LoopbackHttp,
    /// A reverse-DNS private-use scheme such as `com.example.app:/callback` (RFC 8252 §7.1).
    PrivateUse,
}

/// A registrable redirect URI. Kept exactly as given, because matching is character for
/// character; the parsed form is only used to classify it and to derive an origin.
#[derive(Clone)]
pub struct RedirectUri {
    raw: String,
    pub(super) url: Url,
    kind: RedirectKind,
    loopback: bool,
}

impl RedirectUri {
    pub const MAX_LEN: usize = 2000;

    pub fn parse(s: &str) -> Result<Self, Error> {
        let bad = |why: &'static str| Err(Error::invalid_request(why));
        if s.is_empty() {
            return bad("redirect_uri must not be empty");
        }
        if s.len() > Self::MAX_LEN {
            return bad("redirect_uri must be at most 2000 characters");
        }
        // `Url::parse` silently strips or rewrites whitespace, controls and backslashes; the
        // stored string would then differ from what a browser is sent to. Refuse them instead.
        if !s.bytes().all(|b| b.is_ascii_graphic()) || s.contains('\\') {
            return bad(
                "redirect_uri must be printable ASCII without spaces, control characters or backslashes",
            );
        }
        if s.contains('#') {
            return bad("redirect_uri must not contain a fragment (#)");
        }
        let Ok(url) = Url::parse(s) else {
            return bad("redirect_uri must be an absolute URL");
        };
        if !url.username().is_empty() || url.password().is_some() {
            return bad("redirect_uri must not contain user credentials (user@host)");
        }
        match url.scheme() {
            "http" | "https" => {
                let Some(host) = literal_host(s, &url) else {
                    return bad(
                        "redirect_uri must be scheme://host[:port]/path with a plainly written host and no user credentials",
                    );
                };
                let loopback = is_loopback_host(host);
                let kind = if url.scheme() == "https" {
                    RedirectKind::Https
                } else if loopback {
                    RedirectKind::LoopbackHttp
                } else {
                    return bad(
                        "redirect_uri must use https; http is only allowed on localhost, 127.0.0.1 or [::1]",
                    );
                };
                Ok(RedirectUri {
                    raw: s.to_owned(),
                    url,
                    kind,
                    loopback,
                })
            }
            // RFC 8252 §7.1: private-use schemes must be reverse-DNS names, which always
            // contain a dot. This also refuses javascript:, data:, file:, ftp: and bare `myapp:`.
            scheme if scheme.contains('.') && s.len() > scheme.len() + 1 => Ok(RedirectUri {
                raw: s.to_owned(),
                url,
                kind: RedirectKind::PrivateUse,
                loopback: false,
            }),
            _ => bad(
                "redirect_uri must use https, http on a loopback host, or a reverse-DNS private-use scheme (com.example.app:/callback)",
            ),
        }
    }

    /// The URI exactly as registered.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    pub fn kind(&self) -> RedirectKind {
        self.kind
    }

    /// An http(s) URI whose host is `localhost`, `127.0.0.1` or `[::1]`.
    pub fn is_loopback(&self) -> bool {
        self.loopback
    }

    /// The path and query exactly as written (everything after the authority).
    fn raw_path_and_query(&self) -> &str {
        split_hierarchical(&self.raw).map_or("", |(_, _, rest)| rest)
    }

    /// RFC 8252 §7.3: a loopback request matches a loopback registration on any port, with
    /// loopback hosts interchangeable, but the same scheme and the same raw path and query.
    fn loopback_matches(&self, requested: &RedirectUri) -> bool {
        self.loopback
            && requested.loopback
            && self.url.scheme() == requested.url.scheme()
            && self.raw_path_and_query() == requested.raw_path_and_query()
    }
}

impl PartialEq for RedirectUri {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}

impl Eq for RedirectUri {}

impl std::hash::Hash for RedirectUri {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.raw.hash(state);
    }
}

impl fmt::Debug for RedirectUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedirectUri({})", self.raw)
    }
}

impl fmt::Display for RedirectUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl Serialize for RedirectUri {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.raw)
    }
}

impl<'de> Deserialize<'de> for RedirectUri {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        RedirectUri::parse(&s).map_err(|e| serde::de::Error::custom(e.description()))
    }
}

/// The registered URI that `requested` designates: exact string equality first, then the
/// RFC 8252 loopback rule (any port, loopback hosts interchangeable, same scheme, path and
/// query). Non-loopback URIs are never matched loosely: no prefix, case or slash tolerance.
pub fn match_redirect_uri<'a>(
    registered: &'a [RedirectUri],
    requested: &str,
) -> Option<&'a RedirectUri> {
    if let Some(exact) = registered.iter().find(|r| r.raw == requested) {
        return Some(exact);
    }
    // Parsing applies the full hygiene (no fragment, no userinfo, literal host) to the
    // requested value before any loose comparison.
    let requested = RedirectUri::parse(requested).ok()?;
    if !requested.loopback {
        return None;
    }
    registered.iter().find(|r| r.loopback_matches(&requested))
}

/// Splits `scheme://authority rest` on the raw string; `rest` is the path and query as written.
pub(super) fn split_hierarchical(raw: &str) -> Option<(&str, &str, &str)> {
    let (scheme, after) = raw.split_once("://")?;
    let end = after.find(['/', '?', '#']).unwrap_or(after.len());
    Some((scheme, &after[..end], &after[end..]))
}

/// The host as literally written in an http(s) URI, provided it is exactly what `url` parsed.
/// This refuses `https:evil.com`, percent-encoded or numeric-shorthand hosts (`127.1`), and
/// any `@` in the authority, so what is checked is what a browser will visit.
pub(super) fn literal_host<'a>(raw: &'a str, url: &Url) -> Option<&'a str> {
    let (scheme, authority, _) = split_hierarchical(raw)?;
    if !scheme.eq_ignore_ascii_case(url.scheme()) || authority.contains('@') {
        return None;
    }
    let host = if authority.starts_with('[') {
        let close = authority.find(']')?;
        let (host, port) = authority.split_at(close + 1);
        (port.is_empty() || port.starts_with(':')).then_some(host)?
    } else {
        authority.split_once(':').map_or(authority, |(h, _)| h)
    };
    let parsed = url.host_str()?;
    (!host.is_empty() && host.eq_ignore_ascii_case(parsed)).then_some(host)
}

fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost") || host == "127.0.0.1" || host == "[::1]"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::tests::{is_invalid_request, uri, uris};
    use proptest::prelude::*;

    #[test]
    fn https_redirect_uri_is_stored_exactly_as_given() {
        let u = uri("https://APP.example.com:8443/cb?x=1");
        assert_eq!(u.as_str(), "https://APP.example.com:8443/cb?x=1");
        assert_eq!(u.kind(), RedirectKind::Https);
        assert!(!u.is_loopback());
        assert_eq!(uri("https://localhost/cb").kind(), RedirectKind::Https);
        assert!(uri("https://localhost/cb").is_loopback());
    }

    #[test]
    fn http_redirect_uri_requires_a_loopback_host() {
        for ok in [
            "http://localhost/cb",
            "http://localhost:8080/cb",
            "http://127.0.0.1:5000/cb",
            "http://[::1]:5000/cb",
        ] {
            assert_eq!(uri(ok).kind(), RedirectKind::LoopbackHttp, "{ok}");
        }
        for bad in [
            "http://app.example.com/cb",
            "http://localhost.evil.com:80/cb",
            "http://127.1/cb",
            "http://0x7f.0.0.1/cb",
            "http://127.0.0.2/cb",
            "http://%6cocalhost/cb",
        ] {
            assert!(is_invalid_request(RedirectUri::parse(bad)), "{bad}");
        }
    }

    #[test]
    fn private_use_scheme_must_be_reverse_dns() {
        let u = uri("com.example.app:/callback");
        assert_eq!(u.kind(), RedirectKind::PrivateUse);
        assert!(!u.is_loopback());
        assert_eq!(
            uri("com.example.app://oauth/cb").kind(),
            RedirectKind::PrivateUse
        );
        assert!(RedirectUri::parse("com.example.app:").is_err());
    }

    #[test]
    fn dangerous_and_bare_schemes_are_refused() {
        for bad in [
            "javascript:alert(1)",
            "data:text/html,hi",
            "file:///etc/passwd",
            "ftp://example.com/cb",
            "myapp:/callback",
            "myapp://callback",
            "ws://localhost/cb",
        ] {
            assert!(is_invalid_request(RedirectUri::parse(bad)), "{bad}");
        }
    }

    #[test]
    fn fragment_is_refused_anywhere() {
        for bad in [
            "https://app.example.com/cb#",
            "https://app.example.com/cb#x",
            "com.example.app:/cb#frag",
        ] {
            assert_eq!(
                RedirectUri::parse(bad).unwrap_err(),
                Error::invalid_request("redirect_uri must not contain a fragment (#)")
            );
        }
    }

    #[test]
    fn userinfo_is_refused() {
        for bad in [
            "https://app.example.com@evil.com/cb",
            "https://user:pw@app.example.com/cb",
            "https://@app.example.com/cb",
            "http://localhost@evil.com/cb",
            "com.example.app://user@host/cb",
        ] {
            assert!(is_invalid_request(RedirectUri::parse(bad)), "{bad}");
        }
    }

    #[test]
    fn relative_malformed_and_overlong_uris_are_refused() {
        let long = format!("https://app.example.com/{}", "a".repeat(2000));
        for bad in [
            "",
            "/cb",
            "app.example.com/cb",
            "https:app.example.com/cb",
            "https:/app.example.com/cb",
            "https:\\\\evil.com/cb",
            "https://app.example.com/c b",
            " https://app.example.com/cb",
            "https://app.example.com/cb\n",
            "https://app.exämple.com/cb",
            long.as_str(),
        ] {
            assert!(is_invalid_request(RedirectUri::parse(bad)), "{bad:?}");
        }
        let max = format!("https://a.io/{}", "a".repeat(2000 - 13));
        assert!(RedirectUri::parse(&max).is_ok());
    }

    #[test]
    fn redirect_uri_serde_is_a_validated_string() {
        let u = uri("https://app.example.com/cb");
        assert_eq!(
            serde_json::to_string(&u).unwrap(),
            "\"https://app.example.com/cb\""
        );
        assert_eq!(
            serde_json::from_str::<RedirectUri>("\"https://app.example.com/cb\"").unwrap(),
            u
        );
        assert!(serde_json::from_str::<RedirectUri>("\"javascript:alert(1)\"").is_err());
    }

    // ---- matching ------------------------------------------------------------------------

    #[test]
    fn exact_redirect_match_is_character_for_character() {
        let reg = uris(&["https://app.example.com/cb", "com.example.app:/callback"]);
        assert_eq!(
            match_redirect_uri(&reg, "https://app.example.com/cb"),
            Some(&reg[0])
        );
        assert_eq!(
            match_redirect_uri(&reg, "com.example.app:/callback"),
            Some(&reg[1])
        );
        assert_eq!(
            match_redirect_uri(&reg, "com.example.app:/callback/x"),
            None
        );
    }

    #[test]
    fn hostile_near_misses_never_match() {
        let reg = uris(&["https://app.example.com/cb"]);
        for bad in [
            "https://app.example.com/cb/../evil",
            "https://app.example.com/cb?x=1",
            "https://app.example.com/cb/",
            "https://app.example.com/CB",
            "https://app.example.com/c",
            "https://app.example.com.evil.com/cb",
            "https://APP.example.com/cb",
            "https://app.example.com:443/cb",
            "http://app.example.com/cb",
            "https://app.example.com@evil.com/cb",
            "https://evil.com/cb",
            "https://app.example.com/cb#x",
            " https://app.example.com/cb",
        ] {
            assert_eq!(match_redirect_uri(&reg, bad), None, "{bad}");
        }
    }

    #[test]
    fn loopback_redirect_matches_any_port() {
        let reg = uris(&["http://127.0.0.1/callback"]);
        for ok in [
            "http://127.0.0.1:49152/callback",
            "http://127.0.0.1:1/callback",
            "http://127.0.0.1/callback",
        ] {
            assert_eq!(match_redirect_uri(&reg, ok), Some(&reg[0]), "{ok}");
        }
        let with_port = uris(&["http://localhost:3000/cb"]);
        assert_eq!(
            match_redirect_uri(&with_port, "http://localhost:51234/cb"),
            Some(&with_port[0])
        );
    }

    #[test]
    fn loopback_hosts_are_interchangeable() {
        let reg = uris(&["http://localhost:3000/cb"]);
        for ok in [
            "http://127.0.0.1:8080/cb",
            "http://[::1]:9/cb",
            "http://localhost/cb",
        ] {
            assert_eq!(match_redirect_uri(&reg, ok), Some(&reg[0]), "{ok}");
        }
    }

    #[test]
    fn loopback_match_requires_same_scheme_path_and_query() {
        let reg = uris(&["http://localhost:3000/cb?app=1"]);
        for bad in [
            "https://localhost:3000/cb?app=1",
            "http://localhost:4000/cb",
            "http://localhost:4000/cb?app=2",
            "http://localhost:4000/cb/?app=1",
            "http://localhost:4000/CB?app=1",
            "http://localhost:4000/x/../cb?app=1",
        ] {
            assert_eq!(match_redirect_uri(&reg, bad), None, "{bad}");
        }
        assert!(match_redirect_uri(&reg, "http://[::1]:4000/cb?app=1").is_some());
    }

    #[test]
    fn loopback_lookalikes_never_match_loosely() {
        let reg = uris(&["http://localhost:3000/cb"]);
        for bad in [
            "http://localhost.evil.com:80/cb",
            "http://localhost@evil.com:3000/cb",
            "http://evil.com:3000/cb",
            "http://127.0.0.2:3000/cb",
            "http://127.1:3000/cb",
            "http://localhost:3000/cb#x",
        ] {
            assert_eq!(match_redirect_uri(&reg, bad), None, "{bad}");
        }
        // A non-loopback registration never gets port flexibility.
        let remote = uris(&["https://app.example.com:8443/cb"]);
        assert_eq!(
            match_redirect_uri(&remote, "https://app.example.com:9443/cb"),
            None
        );
    }

    proptest! {
        #[test]
        fn loopback_matches_every_port_and_host(
            port in proptest::option::of(1u16..),
            host in prop::sample::select(vec!["localhost", "127.0.0.1", "[::1]"]),
            path in "/[a-z0-9/_-]{0,20}",
        ) {
            let reg = vec![uri(&format!("http://localhost:3000{path}"))];
            let req = match port {
                Some(p) => format!("http://{host}:{p}{path}"),
                None => format!("http://{host}{path}"),
            };
            prop_assert_eq!(match_redirect_uri(&reg, &req), Some(&reg[0]));
            let other = format!("{req}x");
            prop_assert_eq!(match_redirect_uri(&reg, &other), None);
        }

        #[test]
        fn parsed_redirect_uris_round_trip_and_match_themselves(
            host in "[a-z]{1,10}\\.(com|io)",
            path in "/[A-Za-z0-9/_.-]{0,20}",
            query in proptest::option::of("[a-z0-9=&]{1,10}"),
        ) {
            let raw = match query {
                Some(q) => format!("https://{host}{path}?{q}"),
                None => format!("https://{host}{path}"),
            };
            let u = uri(&raw);
            prop_assert_eq!(u.as_str(), raw.as_str());
            let reg = vec![u.clone()];
            prop_assert_eq!(match_redirect_uri(&reg, &raw), Some(&u));
            let json = serde_json::to_string(&u).unwrap();
            prop_assert_eq!(serde_json::from_str::<RedirectUri>(&json).unwrap(), u);
        }
    }
}
