//! Request bodies and query strings, parsed strictly: form or JSON only, bounded size, valid
//! UTF-8, and no parameter twice (RFC 6749 §3.1). Every failure is a JSON 4xx.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{Method, StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Response};
use buzzgate_domain::error::Error;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, Where};

/// The largest body any endpoint accepts.
pub const MAX_BODY: usize = 64 * 1024;

/// A request the parser refused, with its status (400, 413 or 415).
#[derive(Debug)]
pub struct Rejection {
    pub status: StatusCode,
    pub error: Error,
}

impl Rejection {
    fn bad(msg: impl Into<std::borrow::Cow<'static, str>>) -> Self {
        Rejection {
            status: StatusCode::BAD_REQUEST,
            error: Error::InvalidRequest(msg.into()),
        }
    }
}

impl IntoResponse for Rejection {
    /// Through the one error mapping, at the status the parser chose (400, 408, 413, 415).
    fn into_response(self) -> Response {
        ApiError {
            error: self.error,
            at: Where::Status(self.status),
        }
        .into_response()
    }
}

impl From<Rejection> for ApiError {
    fn from(r: Rejection) -> Self {
        ApiError {
            error: r.error,
            at: Where::Status(r.status),
        }
    }
}

/// Decoded `application/x-www-form-urlencoded` pairs. Refuses invalid UTF-8 and repeats.
pub fn parse_form(raw: &[u8]) -> Result<Vec<(String, String)>, Rejection> {
    let mut out: Vec<(String, String)> = Vec::new();
    for part in raw.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
        let (k, v) = match part.iter().position(|b| *b == b'=') {
            Some(i) => (&part[..i], &part[i + 1..]),
            None => (part, &b""[..]),
        };
        let key = decode(k)?;
        let value = decode(v)?;
        push_unique(&mut out, key, value)?;
    }
    Ok(out)
}

fn decode(raw: &[u8]) -> Result<String, Rejection> {
    form_decode(raw).ok_or_else(|| Rejection::bad("Parameters must be valid UTF-8"))
}

/// One `application/x-www-form-urlencoded` name or value (`+` is a space, then
/// percent-decoding), or `None` when the result is not UTF-8. Also what a Basic
/// authorization's id and secret are (RFC 6749 §2.3.1).
pub(crate) fn form_decode(raw: &[u8]) -> Option<String> {
    // Nothing escaped (a token, a grant type, an id): one copy instead of two rewrites.
    if !raw.iter().any(|b| matches!(b, b'+' | b'%')) {
        return String::from_utf8(raw.to_vec()).ok();
    }
    let plus: Vec<u8> = raw
        .iter()
        .map(|b| if *b == b'+' { b' ' } else { *b })
        .collect();
    String::from_utf8(percent_encoding::percent_decode(&plus).collect()).ok()
}

/// The one parameter that may repeat.
pub const REPEATABLE: &str = "resource";

fn push_unique(
    out: &mut Vec<(String, String)>,
    key: String,
    value: String,
) -> Result<(), Rejection> {
    if key.is_empty() {
        return Ok(());
    }
    if key.chars().count() > 128 {
        return Err(Rejection::bad("Parameter name too long"));
    }
    // RFC 8707 §2: `resource` may be given several times; every other parameter once.
    if key != REPEATABLE && out.iter().any(|(k, _)| *k == key) {
        return Err(Rejection::bad(format!(
            "Parameter `{}` is repeated",
            key.chars().filter(|c| !c.is_control()).collect::<String>()
        )));
    }
    out.push((key, value));
    Ok(())
}

/// A JSON value whose objects, at any depth, never repeat a key. `serde_json` keeps the last
/// of two equal keys silently, so a body could say one thing to a reader and another to us;
/// a repeated key is refused instead, as a repeated form parameter is.
struct StrictValue(serde_json::Value);

impl<'de> serde::Deserialize<'de> for StrictValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = serde_json::Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, Into::into))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(StrictValue(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(serde_json::Value::Array(out))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                let shown: String = key.chars().filter(|c| !c.is_control()).take(64).collect();
                return Err(serde::de::Error::custom(format!(
                    "key `{shown}` is repeated"
                )));
            }
            let StrictValue(v) = map.next_value()?;
            out.insert(key, v);
        }
        Ok(serde_json::Value::Object(out))
    }
}

/// Parses JSON, refusing repeated keys (see [`StrictValue`]) and anything that is not JSON.
pub fn parse_json_strict(raw: &[u8]) -> Result<serde_json::Value, Rejection> {
    serde_json::from_slice::<StrictValue>(raw)
        .map(|v| v.0)
        .map_err(|e| {
            let msg = e.to_string();
            if msg.contains("is repeated") {
                let shown: String = msg
                    .split(" at line")
                    .next()
                    .unwrap_or("")
                    .chars()
                    .take(120)
                    .collect();
                Rejection::bad(format!("Invalid JSON body: {shown}"))
            } else {
                Rejection::bad("Request body is not valid JSON")
            }
        })
}

/// A flat JSON object as parameters: strings as they are, numbers and booleans as text,
/// arrays and objects as their JSON text (for `buzz_limit`), `null` as absent.
pub fn parse_json_params(raw: &[u8]) -> Result<Vec<(String, String)>, Rejection> {
    let value = parse_json_strict(raw)?;
    let serde_json::Value::Object(map) = value else {
        return Err(Rejection::bad("Request body must be a JSON object"));
    };
    let mut out = Vec::new();
    for (k, v) in map {
        let text = match v {
            serde_json::Value::Null => continue,
            serde_json::Value::String(s) => s,
            // `"resource": ["…", "…"]`: one parameter per element.
            serde_json::Value::Array(items)
                if k == REPEATABLE && items.iter().all(serde_json::Value::is_string) =>
            {
                for item in items {
                    if let serde_json::Value::String(s) = item {
                        push_unique(&mut out, k.clone(), s)?;
                    }
                }
                continue;
            }
            other => other.to_string(),
        };
        push_unique(&mut out, k, text)?;
    }
    Ok(out)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyKind {
    Form,
    Json,
    Empty,
}

fn body_kind(parts: &Parts, body_len: usize) -> Result<BodyKind, Rejection> {
    let ct = parts
        .headers
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or("").to_ascii_lowercase());
    let essence = ct
        .as_deref()
        .map(|c| c.split(';').next().unwrap_or("").trim().to_owned());
    match essence.as_deref() {
        Some("application/x-www-form-urlencoded") => Ok(BodyKind::Form),
        Some("application/json") => Ok(BodyKind::Json),
        Some(e) if e.ends_with("+json") => Ok(BodyKind::Json),
        None if body_len == 0 => Ok(BodyKind::Empty),
        None => Err(Rejection {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            error: Error::invalid_request(
                "Missing Content-Type: send application/x-www-form-urlencoded or application/json",
            ),
        }),
        Some(_) => Err(Rejection {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            error: Error::invalid_request(
                "Unsupported Content-Type: send application/x-www-form-urlencoded or application/json",
            ),
        }),
    }
}

/// Reads the whole body, at most [`MAX_BODY`] bytes: 413 past that, 408 when it arrives
/// slower than the edge allows ([`crate::edge::Limits::body`]), 400 when the connection
/// breaks off.
pub async fn read_body(body: axum::body::Body) -> Result<Bytes, Rejection> {
    axum::body::to_bytes(body, MAX_BODY).await.map_err(|e| {
        let cause = e.into_inner();
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(cause.as_ref());
        while let Some(err) = source {
            if err.is::<tower_http::timeout::TimeoutError>() {
                return Rejection {
                    status: StatusCode::REQUEST_TIMEOUT,
                    error: Error::invalid_request("The request body took too long"),
                };
            }
            if err.is::<http_body_util::LengthLimitError>() {
                return Rejection {
                    status: StatusCode::PAYLOAD_TOO_LARGE,
                    error: Error::invalid_request(format!(
                        "Request body is too large (limit {MAX_BODY} bytes)"
                    )),
                };
            }
            source = err.source();
        }
        Rejection::bad("The request body could not be read")
    })
}

/// The server's one yes/no vocabulary (request fields and configuration alike): `true`,
/// `on`, `1`, `yes` and `false`, `off`, `0`, `no`, in any case; anything else is `None`.
pub fn yes_no(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "on" | "1" | "yes" => Some(true),
        "false" | "off" | "0" | "no" => Some(false),
        _ => None,
    }
}

/// The parameters of a request: the query string of a GET, the form or JSON body of a POST.
#[derive(Debug, Clone, Default)]
pub struct Params(pub Vec<(String, String)>);

impl Params {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
    pub fn owned(&self, key: &str) -> Option<String> {
        self.get(key).map(str::to_owned)
    }
    /// Every value of a repeatable parameter (`resource`), in order.
    pub fn all(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }
    pub fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// A yes/no field, one rule for every form and JSON body: `true`, `on`, `1` and `yes`
    /// are yes; `false`, `off`, `0` and `no` are no (any case); absent is `None`; anything
    /// else is `invalid_request`, never a silent guess.
    pub fn flag(&self, key: &str) -> Result<Option<bool>, Error> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        yes_no(v)
            .map(Some)
            .ok_or_else(|| Error::InvalidRequest(format!("`{key}` must be true or false").into()))
    }

    /// The cap controls of the consent and "Edit limit" forms (SPEC 15): `buzz_cap` (the
    /// "Limit Buzz spending" checkbox, absent when unticked), `buzz_amount` and `buzz_period`.
    /// `None` when the form had neither the amount nor the period.
    pub fn cap_form(&self) -> Result<Option<buzzgate_domain::buzz::CapForm>, Error> {
        if !self.has("buzz_amount") && !self.has("buzz_period") {
            return Ok(None);
        }
        Ok(Some(buzzgate_domain::buzz::CapForm {
            limited: self.flag("buzz_cap")?.unwrap_or(false),
            amount: self.owned("buzz_amount"),
            period_days: self.owned("buzz_period"),
        }))
    }

    /// A device approval's answer (`approve`), the same on the JSON endpoint and the page:
    /// absent means approve (posting the code is approving, as Civitai's `device-approve`
    /// does); `approve=false` denies.
    pub fn device_decision(&self) -> Result<bool, Error> {
        Ok(self.flag("approve")?.unwrap_or(true))
    }
}

impl<S: Send + Sync> FromRequest<S> for Params {
    type Rejection = Rejection;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        if parts.method == Method::GET || parts.method == Method::HEAD {
            let q = parts.uri.query().unwrap_or("");
            return Ok(Params(parse_form(q.as_bytes())?));
        }
        let bytes = read_body(body).await?;
        match body_kind(&parts, bytes.len())? {
            BodyKind::Form => Ok(Params(parse_form(&bytes)?)),
            BodyKind::Json => Ok(Params(parse_json_params(&bytes)?)),
            BodyKind::Empty => Ok(Params::default()),
        }
    }
}

/// The query string only (for POST endpoints that also read it, and GET APIs).
#[derive(Debug, Clone, Default)]
pub struct Query(pub Params);

impl<S: Send + Sync> FromRequestParts<S> for Query {
    type Rejection = Rejection;
    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let q = parts.uri.query().unwrap_or("");
        Ok(Query(Params(parse_form(q.as_bytes())?)))
    }
}

/// A typed JSON body with the contract's error shape (axum's own rejection is plain text).
#[derive(Debug, Clone)]
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = Rejection;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let bytes = read_body(body).await?;
        let kind = body_kind(&parts, bytes.len())?;
        let bytes = if kind == BodyKind::Empty {
            Bytes::from_static(b"{}")
        } else if kind == BodyKind::Json {
            bytes
        } else {
            return Err(Rejection {
                status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                error: Error::invalid_request("Send a JSON body (Content-Type: application/json)"),
            });
        };
        let value = parse_json_strict(&bytes)?;
        serde_json::from_value(value).map(Json).map_err(|e| {
            // serde's message names the field and the expected type; cut it short.
            let msg: String = e.to_string().chars().take(200).collect();
            Rejection::bad(format!("Invalid JSON body: {msg}"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(k: &str, v: &str) -> Params {
        Params(vec![(k.into(), v.into())])
    }

    #[test]
    fn yes_no_fields_follow_one_rule_and_refuse_anything_else() {
        for yes in ["true", "on", "1", "yes", "TRUE"] {
            assert_eq!(
                one("remember", yes).flag("remember"),
                Ok(Some(true)),
                "{yes}"
            );
        }
        for no in ["false", "off", "0", "no", "False"] {
            assert_eq!(
                one("remember", no).flag("remember"),
                Ok(Some(false)),
                "{no}"
            );
        }
        assert_eq!(Params::default().flag("remember"), Ok(None));
        let err = one("approved", "maybe").flag("approved").unwrap_err();
        assert_eq!(err.code(), "invalid_request");
        assert!(err.to_string().contains("`approved` must be true or false"));
    }

    #[test]
    fn a_device_decision_is_approve_unless_told_otherwise_on_every_surface() {
        assert_eq!(Params::default().device_decision(), Ok(true));
        assert_eq!(one("approve", "true").device_decision(), Ok(true));
        assert_eq!(one("approve", "false").device_decision(), Ok(false));
        assert_eq!(one("approve", "0").device_decision(), Ok(false));
        assert!(one("approve", "nah").device_decision().is_err());
    }

    #[test]
    fn forms_decode_plus_and_percent() {
        let p = parse_form(b"a=b+c&d=%2Fx%20y&e").unwrap();
        assert_eq!(
            p,
            vec![
                ("a".into(), "b c".into()),
                ("d".into(), "/x y".into()),
                ("e".into(), "".into())
            ]
        );
    }

    #[test]
    fn repeated_parameters_are_refused() {
        let e = parse_form(b"code=a&code=b").unwrap_err();
        assert_eq!(e.status, 400);
        assert!(e.error.description().contains("`code` is repeated"));
    }

    #[test]
    fn invalid_utf8_is_refused() {
        let e = parse_form(b"a=%ff%fe").unwrap_err();
        assert_eq!(e.error.code(), "invalid_request");
        // Unescaped bytes too, which take the path without decoding.
        let e = parse_form(b"a=\xff\xfe").unwrap_err();
        assert_eq!(e.error.code(), "invalid_request");
        let kept = parse_form(b"token=civitai_abc-._~&b=x+y%21").unwrap();
        assert_eq!(
            kept,
            [
                ("token".to_owned(), "civitai_abc-._~".to_owned()),
                ("b".to_owned(), "x y!".to_owned())
            ]
        );
    }

    #[test]
    fn repeated_json_keys_are_refused_at_any_depth() {
        let e = parse_json_params(br#"{"amount":1,"amount":50000}"#).unwrap_err();
        assert_eq!(e.status, 400);
        assert!(
            e.error.description().contains("`amount` is repeated"),
            "{}",
            e.error.description()
        );
        let e =
            parse_json_strict(br#"{"l":[{"type":"absolute","limit":1,"limit":9}]}"#).unwrap_err();
        assert!(e.error.description().contains("`limit` is repeated"));
        assert!(parse_json_strict(br#"{"a":{"x":1},"b":{"x":2}}"#).is_ok());
        assert!(parse_json_strict(b"[1, 2.5, null, true]").is_ok());
    }

    #[test]
    fn json_params_flatten_scalars() {
        let p = parse_json_params(br#"{"scope":114689,"x":null,"b":true,"l":[{"a":1}]}"#).unwrap();
        let get = |k: &str| p.iter().find(|(kk, _)| kk == k).map(|(_, v)| v.clone());
        assert_eq!(get("scope").as_deref(), Some("114689"));
        assert_eq!(get("x"), None);
        assert_eq!(get("b").as_deref(), Some("true"));
        assert_eq!(get("l").as_deref(), Some(r#"[{"a":1}]"#));
        assert!(parse_json_params(b"[1]").is_err());
        assert!(parse_json_params(b"{").is_err());
    }
}
