//! The pages' rendering (docs/pages.md): minijinja templates embedded in the binary, one
//! stylesheet and one script served from here, and the headers every page gets: a CSP with
//! no inline script or style and `form-action` limited to this site (plus, on the consent
//! page, where the answer redirects to), never framed, never cached (the edge adds those).

use std::sync::LazyLock;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use minijinja::{Environment, UndefinedBehavior, Value};
use serde::Serialize;

const TEMPLATES: &[(&str, &str)] = &[
    ("layout.html", include_str!("../templates/layout.html")),
    ("message.html", include_str!("../templates/message.html")),
    ("home.html", include_str!("../templates/home.html")),
    ("login.html", include_str!("../templates/login.html")),
    ("signup.html", include_str!("../templates/signup.html")),
    ("account.html", include_str!("../templates/account.html")),
    ("app_form.html", include_str!("../templates/app_form.html")),
    ("secret.html", include_str!("../templates/secret.html")),
    ("confirm.html", include_str!("../templates/confirm.html")),
    ("cap.html", include_str!("../templates/cap.html")),
    ("limit.html", include_str!("../templates/limit.html")),
    ("consent.html", include_str!("../templates/consent.html")),
    ("device.html", include_str!("../templates/device.html")),
    ("admin.html", include_str!("../templates/admin.html")),
];

/// The stylesheet at `/static/buzzgate.css`.
pub const STYLESHEET: &str = include_str!("../static/buzzgate.css");
/// The app form's preset/grid sync at `/static/buzzgate.js` (the pages work without it).
pub const SCRIPT: &str = include_str!("../static/buzzgate.js");

static ENV: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    // A misspelt variable is an error (caught by the tests that render every page), never
    // an empty string on a page.
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_formatter(html_formatter);
    for (name, source) in TEMPLATES {
        if let Err(e) = env.add_template(name, source) {
            panic!("template {name} does not parse: {e}");
        }
    }
    env
});

/// HTML-escapes `& < > " '` only (minijinja's default also escapes `/`, as `&#x2f;`, which
/// is valid HTML but breaks simple scrapers of our forms for no safety gain).
fn html_formatter(
    out: &mut minijinja::Output,
    state: &minijinja::State,
    value: &Value,
) -> Result<(), minijinja::Error> {
    if matches!(state.auto_escape(), minijinja::AutoEscape::Html)
        && !value.is_safe()
        && !value.is_undefined()
        && !value.is_none()
    {
        let text = value.to_string();
        let mut escaped = String::with_capacity(text.len());
        for c in text.chars() {
            match c {
                '&' => escaped.push_str("&amp;"),
                '<' => escaped.push_str("&lt;"),
                '>' => escaped.push_str("&gt;"),
                '"' => escaped.push_str("&quot;"),
                '\'' => escaped.push_str("&#39;"),
                c => escaped.push(c),
            }
        }
        return out.write_str(&escaped).map_err(minijinja::Error::from);
    }
    minijinja::escape_formatter(out, state, value)
}

/// The signed-in person, as the layout shows them.
#[derive(Debug, Clone, Serialize)]
pub struct Viewer {
    pub name: String,
    pub admin: bool,
    pub csrf: String,
}

/// One page to render.
#[derive(Debug)]
pub struct Page {
    pub status: StatusCode,
    pub template: &'static str,
    pub title: String,
    pub viewer: Option<Viewer>,
    /// A narrow column (sign-in, consent, device, confirmations).
    pub narrow: bool,
    /// Loads `/static/buzzgate.js`.
    pub script: bool,
    /// Where forms may also post or be redirected (the consent page's redirect URI origin).
    pub form_target: Option<String>,
    pub context: Value,
}

impl Page {
    pub fn new(template: &'static str, title: impl Into<String>, context: Value) -> Page {
        Page {
            status: StatusCode::OK,
            template,
            title: title.into(),
            viewer: None,
            narrow: false,
            script: false,
            form_target: None,
            context,
        }
    }
    pub fn status(mut self, status: StatusCode) -> Page {
        self.status = status;
        self
    }
    pub fn viewer(mut self, viewer: Option<Viewer>) -> Page {
        self.viewer = viewer;
        self
    }
    pub fn narrow(mut self) -> Page {
        self.narrow = true;
        self
    }
    pub fn script(mut self) -> Page {
        self.script = true;
        self
    }
    pub fn form_target(mut self, target: Option<String>) -> Page {
        self.form_target = target;
        self
    }

    /// The HTML, or the template error (a bug: every page is rendered by the tests).
    pub fn render(&self) -> Result<String, minijinja::Error> {
        let base = minijinja::context! {
            title => self.title.clone(),
            user => self.viewer.clone(),
            narrow => self.narrow,
            script => self.script,
        };
        let ctx = minijinja::context! { ..self.context.clone(), ..base };
        ENV.get_template(self.template)?.render(ctx)
    }
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        let body = match self.render() {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(template = self.template, error = %e, "page did not render");
                return (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "This page could not be shown. The error is in the server's log.",
                )
                    .into_response();
            }
        };
        let mut res = (self.status, Html(body)).into_response();
        let csp = csp(self.form_target.as_deref());
        if let Ok(v) = HeaderValue::from_str(&csp) {
            res.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
        }
        res
    }
}

/// The pages' policy: scripts and styles from this site only (no inline ones), forms post to
/// this site (and to `extra`, a redirect target the consent answer goes to: browsers apply
/// `form-action` to the redirect after a form post), never framed.
pub fn csp(extra: Option<&str>) -> String {
    let extra = extra
        .filter(|e| {
            !e.is_empty()
                && e.chars()
                    .all(|c| c.is_ascii_graphic() && c != ';' && c != ',')
        })
        .map(|e| format!(" {e}"))
        .unwrap_or_default();
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
         form-action 'self'{extra}; frame-ancestors 'none'; base-uri 'none'"
    )
}

/// A static asset, cacheable for an hour.
pub fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut res = body.into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    res
}

/// `1234567` → "1,234,567".
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A date as people read it: "2 December 2026".
pub fn date(at: time::OffsetDateTime) -> String {
    let f = time::macros::format_description!("[day padding:none] [month repr:long] [year]");
    at.format(&f).unwrap_or_default()
}

/// A time for the audit log: "2026-12-02 09:15:03" (UTC).
pub fn timestamp(at: time::OffsetDateTime) -> String {
    let f = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    at.to_offset(time::UtcOffset::UTC)
        .format(&f)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_parses() {
        for (name, _) in TEMPLATES {
            assert!(ENV.get_template(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn numbers_and_dates_read_well() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(2500), "2,500");
        assert_eq!(thousands(1_234_567), "1,234,567");
        let at = time::macros::datetime!(2026-12-02 09:15:03 UTC);
        assert_eq!(date(at), "2 December 2026");
        assert_eq!(timestamp(at), "2026-12-02 09:15:03");
    }

    #[test]
    fn the_policy_allows_no_inline_code_and_only_known_form_targets() {
        let p = csp(None);
        assert!(
            p.contains("script-src 'self'") && !p.contains("unsafe-inline"),
            "{p}"
        );
        assert!(p.contains("form-action 'self';") && p.contains("frame-ancestors 'none'"));
        assert!(
            csp(Some("https://app.example")).contains("form-action 'self' https://app.example;")
        );
        assert_eq!(csp(Some("x; script-src *")), p, "nothing can be injected");
    }

    #[test]
    fn values_are_escaped() {
        let page = Page::new(
            "message.html",
            "<b>",
            minijinja::context! { heading => "<script>x</script>", text => "a & \"b\"", error => false, link => Value::from(()) },
        );
        let html = page.render().unwrap();
        assert!(html.contains("&lt;script&gt;x&lt;/script&gt;"), "{html}");
        assert!(html.contains("a &amp; &quot;b&quot;"), "{html}");
        assert!(!html.contains("<script>x"));
        assert!(
            html.contains("<title>&lt;b&gt; · Buzzgate</title>"),
            "{html}"
        );
    }
}
