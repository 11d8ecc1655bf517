//! The tools' backend under `buzzgate serve`: the core, in-process, with the same bodies and
//! errors as the HTTP endpoints (`buzzgate_http::responses`, `buzzgate_http::error`).

use async_trait::async_trait;
use buzzgate_domain::client::ClientAuth;
use buzzgate_domain::error::Error;
use buzzgate_domain::service::Buzzgate;
use buzzgate_domain::service::caller::Credentials;
use buzzgate_domain::service::tokens::{GrantRequest, TokenRequest};
use buzzgate_http::error::{Where, status_of};
use buzzgate_http::responses::{
    ActiveTokenBody, EmptyBody, ErrorBody, IntrospectionBody, TokenBody, UserInfoBody,
};
use serde_json::Value;

use crate::{Backend, Failure, Fields};

/// The core behind the tools.
#[derive(Debug, Clone)]
pub struct InProcess {
    core: Buzzgate,
    scope_as_array: bool,
}

impl InProcess {
    /// `scope_as_array`: token responses carry `scope` as Civitai's `["<decimal>"]`, as the
    /// HTTP endpoint does under `BUZZGATE_SCOPE_AS_ARRAY`.
    pub fn new(core: Buzzgate, scope_as_array: bool) -> InProcess {
        InProcess {
            core,
            scope_as_array,
        }
    }
}

fn field(form: &Fields, name: &str) -> Option<String> {
    form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

fn failure(e: Error, at: Where) -> Failure {
    Failure {
        status: status_of(&e, at).as_u16(),
        body: json(&ErrorBody::of(&e)),
    }
}

fn json(body: &impl serde::Serialize) -> Value {
    serde_json::to_value(body).unwrap_or(Value::Null)
}

fn client_credentials(form: &Fields) -> Result<Credentials, Error> {
    Ok(Credentials {
        client: Some(ClientAuth::from_fields(
            field(form, "client_id").as_deref(),
            field(form, "client_secret").as_deref(),
        )?),
        ..Credentials::default()
    })
}

#[async_trait]
impl Backend for InProcess {
    async fn token(&self, form: &Fields) -> Result<Value, Failure> {
        let run = async {
            let kind = GrantRequest::grant_type(field(form, "grant_type").as_deref())?;
            let client = ClientAuth::from_fields(
                field(form, "client_id").as_deref(),
                field(form, "client_secret").as_deref(),
            )?;
            let req = TokenRequest {
                client,
                origin: None,
                ip: None,
                grant: GrantRequest::from_fields(kind, |name| field(form, name)),
                resources: form
                    .iter()
                    .filter(|(k, _)| k == "resource")
                    .map(|(_, v)| v.clone())
                    .collect(),
            };
            self.core.tokens().token(req).await
        };
        match run.await {
            Ok(t) => Ok(json(&TokenBody::new(&t, self.scope_as_array))),
            Err(e) => Err(failure(e, Where::TokenEndpoint)),
        }
    }

    async fn introspect(&self, form: &Fields) -> Result<Value, Failure> {
        let run = async {
            let caller = self
                .core
                .callers()
                .identify(&client_credentials(form)?)
                .await?;
            self.core
                .tokens()
                .introspect(&caller, field(form, "token").as_deref())
                .await
        };
        let i = run.await.map_err(|e| failure(e, Where::TokenEndpoint))?;
        let body = match (&i.record, i.active) {
            (Some(r), true) => IntrospectionBody::Active(ActiveTokenBody::new(
                r,
                i.username.as_deref(),
                i.buzz_limit.as_ref(),
                &self.core.deps.config.issuer,
            )),
            _ => IntrospectionBody::Inactive { active: false },
        };
        Ok(json(&body))
    }

    async fn userinfo(&self, access_token: &str) -> Result<Value, Failure> {
        let run = async {
            let caller = self
                .core
                .callers()
                .identify(&Credentials {
                    bearer: Some(access_token.to_owned()),
                    ..Credentials::default()
                })
                .await?;
            self.core.tokens().userinfo(&caller).await
        };
        match run.await {
            Ok(u) => Ok(json(&UserInfoBody::from(u))),
            Err(e) => Err(failure(e, Where::Api)),
        }
    }

    async fn revoke(&self, form: &Fields) -> Result<Value, Failure> {
        let run = async {
            let creds = client_credentials(form)?;
            self.core
                .tokens()
                .revoke(&creds, field(form, "token").as_deref())
                .await
        };
        match run.await {
            Ok(()) => Ok(json(&EmptyBody {})),
            Err(e) => Err(failure(e, Where::TokenEndpoint)),
        }
    }
}
