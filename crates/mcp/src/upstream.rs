//! The outbound HTTP port of proxy mode (docs/mcp.md): one reqwest client to the upstream's
//! token, introspection, userinfo and revocation endpoints, with connect and total timeouts,
//! no redirects followed, and bounded retries for idempotent calls only (userinfo and
//! introspection; a token exchange or a revocation is never sent twice).

use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use crate::{Backend, Failure, Fields};

/// Where the upstream is and how long to wait for it.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// The upstream's base URL (`https://civitai.com`, or another Buzzgate), no trailing slash.
    pub base: String,
    /// The path prefix of its OAuth endpoints (`/api/auth/oauth`).
    pub prefix: String,
    pub connect_timeout: Duration,
    pub timeout: Duration,
    /// Extra attempts for idempotent calls after a connection failure or a 5xx.
    pub retries: u32,
}

impl UpstreamConfig {
    pub fn new(base: &str) -> UpstreamConfig {
        UpstreamConfig {
            base: base.trim_end_matches('/').to_owned(),
            prefix: "/api/auth/oauth".into(),
            connect_timeout: Duration::from_secs(3),
            timeout: Duration::from_secs(10),
            retries: 2,
        }
    }

    /// The upstream URL of endpoint `name` (`token`, `authorize`, …).
    pub fn url(&self, name: &str) -> String {
        format!("{}{}/{name}", self.base, self.prefix)
    }
}

/// The upstream, behind the tools and the proxy's REST side.
#[derive(Debug, Clone)]
pub struct Upstream {
    config: UpstreamConfig,
    http: reqwest::Client,
}

impl Upstream {
    pub fn new(config: UpstreamConfig) -> Result<Upstream, String> {
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("buzzgate-proxy/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("the upstream HTTP client: {e}"))?;
        Ok(Upstream { config, http })
    }

    pub fn config(&self) -> &UpstreamConfig {
        &self.config
    }

    /// One call; `idempotent` calls are retried on a connection failure or a 5xx.
    async fn call(
        &self,
        build: impl Fn() -> reqwest::RequestBuilder,
        idempotent: bool,
    ) -> Result<Value, Failure> {
        let attempts = if idempotent {
            1 + self.config.retries
        } else {
            1
        };
        let mut last =
            Failure::server_error(502, "The upstream authorization server did not answer");
        for attempt in 0..attempts {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
            }
            match build().send().await {
                Ok(res) => {
                    let status = res.status().as_u16();
                    let text = res.text().await.unwrap_or_default();
                    let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                    if (200..300).contains(&status) {
                        return Ok(if body.is_null() {
                            serde_json::json!({})
                        } else {
                            body
                        });
                    }
                    // An OAuth error passes through as it is; anything else unreadable from
                    // the upstream is a bad gateway.
                    let oauth_error = body.get("error").is_some_and(Value::is_string);
                    let failure = if oauth_error {
                        Failure { status, body }
                    } else {
                        Failure::server_error(
                            502,
                            &format!("The upstream authorization server answered {status}"),
                        )
                    };
                    if status < 500 || !idempotent {
                        return Err(failure);
                    }
                    last = failure;
                }
                Err(e) if e.is_timeout() => {
                    // A timed-out call may have taken effect: never retried.
                    return Err(Failure::server_error(
                        504,
                        "The upstream authorization server did not answer in time",
                    ));
                }
                Err(_) => {
                    last = Failure::server_error(
                        502,
                        "The upstream authorization server could not be reached",
                    );
                }
            }
        }
        Err(last)
    }

    fn form(&self, endpoint: &str, form: &Fields) -> reqwest::RequestBuilder {
        self.http.post(self.config.url(endpoint)).form(form)
    }
}

#[async_trait]
impl Backend for Upstream {
    async fn token(&self, form: &Fields) -> Result<Value, Failure> {
        self.call(|| self.form("token", form), false).await
    }

    async fn introspect(&self, form: &Fields) -> Result<Value, Failure> {
        self.call(|| self.form("introspect", form), true).await
    }

    async fn userinfo(&self, access_token: &str) -> Result<Value, Failure> {
        self.call(
            || {
                self.http
                    .get(self.config.url("userinfo"))
                    .bearer_auth(access_token)
            },
            true,
        )
        .await
    }

    async fn revoke(&self, form: &Fields) -> Result<Value, Failure> {
        self.call(|| self.form("revoke", form), false).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `--upstream https://civitai.com` needs TLS in the outbound client: an https request
    /// gets as far as connecting (nothing listens here), never "scheme not supported".
    #[tokio::test]
    async fn the_outbound_client_speaks_https() {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = probe.local_addr().unwrap().port();
        drop(probe);
        let up = Upstream::new(UpstreamConfig::new(&format!("https://127.0.0.1:{port}"))).unwrap();
        let err = up
            .http
            .post(up.config.url("token"))
            .send()
            .await
            .unwrap_err();
        assert!(err.is_connect(), "{err:?}");
        assert!(!err.is_builder(), "{err:?}");
        let f = up.token(&vec![]).await.unwrap_err();
        assert_eq!(f.status, 502);
        assert_eq!(f.body["error"], "server_error");
    }
}
