//! Browser origins: parsing and normalising `scheme://host[:port]`, and deriving one from a
//! redirect URI.

use std::fmt;

use serde::{Deserialize, Serialize};
use url::Url;

use super::redirect_uri::{RedirectUri, literal_host, split_hierarchical};
use crate::error::Error;

/// A browser origin `scheme://host[:port]`, lowercase, default port dropped, so that it
/// compares equal to the `Origin` header a browser sends.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Origin(String);

impl Origin {
    pub const MAX_LEN: usize = 512;

    pub fn parse(s: &str) -> Result<Self, Error> {
        let bad = || {
            Err(Error::invalid_request(
                "origin must be http(s)://host[:port] with nothing after the host and port",
            ))
        };
        if s.is_empty()
            || s.len() > Self::MAX_LEN
            || !s.bytes().all(|b| b.is_ascii_graphic())
            || s.contains('\\')
        {
            return bad();
        }
        let Some((_, _, rest)) = split_hierarchical(s) else {
            return bad();
        };
        if !(rest.is_empty() || rest == "/") {
            return bad();
        }
        let Ok(url) = Url::parse(s) else {
            return bad();
        };
        if !url.username().is_empty() || url.password().is_some() {
            return bad();
        }
        if literal_host(s, &url).is_none() {
            return bad();
        }
        match origin_of(&url) {
            Some(o) => Ok(o),
            None => bad(),
        }
    }

    /// The origin a browser reports for pages at this redirect URI (http and https only).
    pub fn from_redirect_uri(uri: &RedirectUri) -> Option<Origin> {
        origin_of(&uri.url)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `url` already lowercases the scheme and host and drops the scheme's default port.
fn origin_of(url: &Url) -> Option<Origin> {
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    let host = url.host_str()?;
    Some(Origin(match url.port() {
        Some(port) => format!("{}://{host}:{port}", url.scheme()),
        None => format!("{}://{host}", url.scheme()),
    }))
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Origin {
    type Error = Error;
    fn try_from(s: String) -> Result<Self, Error> {
        Origin::parse(&s)
    }
}

impl From<Origin> for String {
    fn from(o: Origin) -> String {
        o.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::tests::{is_invalid_request, uri};

    #[test]
    fn origin_is_normalised_lowercase_without_default_port() {
        let cases = [
            ("https://App.Example.COM", "https://app.example.com"),
            ("https://app.example.com:443/", "https://app.example.com"),
            ("HTTP://localhost:80", "http://localhost"),
            ("http://localhost:5173", "http://localhost:5173"),
            ("https://app.example.com:80", "https://app.example.com:80"),
            ("http://[::1]:3000", "http://[::1]:3000"),
        ];
        for (raw, want) in cases {
            assert_eq!(Origin::parse(raw).unwrap().as_str(), want, "{raw}");
        }
        assert_eq!(
            serde_json::to_string(&Origin::parse("https://a.io").unwrap()).unwrap(),
            "\"https://a.io\""
        );
        assert!(serde_json::from_str::<Origin>("\"https://a.io/x\"").is_err());
    }

    #[test]
    fn origin_refuses_paths_queries_credentials_and_other_schemes() {
        for bad in [
            "",
            "null",
            "https://a.io/x",
            "https://a.io//",
            "https://a.io?x",
            "https://a.io/#",
            "https://u@a.io",
            "ftp://a.io",
            "com.example.app://a",
            "https://a.io ",
            "https:a.io",
        ] {
            assert!(is_invalid_request(Origin::parse(bad)), "{bad:?}");
        }
    }

    #[test]
    fn origin_is_derived_from_http_redirect_uris_only() {
        assert_eq!(
            Origin::from_redirect_uri(&uri("https://App.example.com:443/cb?x=1"))
                .unwrap()
                .as_str(),
            "https://app.example.com"
        );
        assert_eq!(
            Origin::from_redirect_uri(&uri("http://localhost:3000/cb"))
                .unwrap()
                .as_str(),
            "http://localhost:3000"
        );
        assert_eq!(
            Origin::from_redirect_uri(&uri("com.example.app://host/cb")),
            None
        );
    }
}
