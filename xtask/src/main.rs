//! `cargo xtask <task>`: the project's dev tasks as a plain Rust binary (no Makefile).
//!
//! - `ci`: format check, clippy with warnings denied, then every test of the workspace.
//! - `test`: the tests only (nextest when installed, else `cargo test`).
//! - `tidy`: repository rules that a compiler cannot check: no stubs, the domain stays pure,
//!   every contract case is in the suite's list, every route is in `docs/api.md`, every
//!   setting is in the README.
//! - `memory`: a release node's resident memory while it mints and validates 60,000 tokens
//!   (`tests/memory/run.sh`; minutes, so not part of `ci`).
//! - `bench`: Buzzgate side by side with pgbench, redis-benchmark and the peer server, every
//!   workload of issue 10 on Postgres + Redis and on SQLite (`tests/bench/bench.py`; about ten
//!   minutes; docs/benchmarks.md).
//! - `chaos`: three release nodes on a Postgres and a Redis of their own: the races and the
//!   cross-node promises of SPEC 11, then Redis, Postgres and a node failing under load
//!   (`tests/chaos/chaos.py`; a few minutes; docs/security.md, "Three nodes under fire").
//!   Builds the release binary first unless `CHAOS_SKIP_BUILD=1` or `BUZZGATE_BIN` names one.

use std::env;
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let task = env::args().nth(1).unwrap_or_default();
    let result = match task.as_str() {
        "ci" => ci(),
        "test" => test(),
        "tidy" => tidy(),
        "memory" => memory(),
        "bench" => bench(),
        "chaos" => chaos(),
        _ => {
            eprintln!("usage: cargo xtask <ci|test|tidy|memory|bench|chaos>");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask {task}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn cargo() -> Command {
    Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn run(mut cmd: Command) -> Result<(), String> {
    eprintln!("$ {cmd:?}");
    let status = cmd
        .status()
        .map_err(|e| format!("could not start {cmd:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed with {status}"))
    }
}

fn ci() -> Result<(), String> {
    let mut fmt = cargo();
    fmt.args(["fmt", "--all", "--", "--check"]);
    run(fmt)?;
    let mut clippy = cargo();
    clippy.args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--all-features",
        "--",
        "-D",
        "warnings",
    ]);
    run(clippy)?;
    tidy()?;
    test()
}

fn has_nextest() -> bool {
    cargo()
        .args(["nextest", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn test() -> Result<(), String> {
    if has_nextest() {
        // nextest does not run doctests: run them first, so the log closes on nextest's
        // summary of the real test count.
        let mut d = cargo();
        d.args(["test", "--workspace", "--all-features", "--doc"]);
        run(d)?;
        let mut t = cargo();
        t.args([
            "nextest",
            "run",
            "--workspace",
            "--all-features",
            "--no-fail-fast",
        ]);
        run(t)
    } else {
        let mut t = cargo();
        t.args(["test", "--workspace", "--all-features", "--no-fail-fast"]);
        run(t)
    }
}

/// The domain crate must not depend on I/O crates (SPEC 2), and no stub may land.
fn tidy() -> Result<(), String> {
    let out = cargo()
        .args([
            "tree",
            "-p",
            "buzzgate-domain",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let tree = String::from_utf8_lossy(&out.stdout);
    let forbidden = [
        "sqlx", "redis", "axum", "hyper", "reqwest", "tokio ", "mio ",
    ];
    for line in tree.lines() {
        let name = format!("{} ", line.split_whitespace().next().unwrap_or(""));
        if let Some(f) = forbidden
            .iter()
            .find(|f| name.starts_with(&format!("{} ", f.trim())))
        {
            return Err(format!(
                "buzzgate-domain depends on `{}` ({line}); the domain must stay pure",
                f.trim()
            ));
        }
    }
    let grep = Command::new("git")
        .args([
            "grep",
            "-n",
            "-E",
            r"todo!\(|unimplemented!\(",
            "--",
            "crates/*.rs",
            "xtask/*.rs",
        ])
        .output()
        .map_err(|e| e.to_string())?;
    let hits = String::from_utf8_lossy(&grep.stdout);
    let hits: Vec<&str> = hits
        .lines()
        .filter(|l| !l.starts_with("xtask/src/main.rs"))
        .collect();
    if !hits.is_empty() {
        return Err(format!("stubs left in code:\n{}", hits.join("\n")));
    }
    let read =
        |path: &str| std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"));
    let mut cases = String::new();
    let dir = "crates/testkit/src/cases";
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read {dir}: {e}"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .collect();
    files.sort();
    for f in files {
        cases.push_str(&std::fs::read_to_string(&f).map_err(|e| e.to_string())?);
    }
    let unlisted = unlisted_cases(&cases, &read("crates/testkit/src/lib.rs")?);
    if !unlisted.is_empty() {
        return Err(format!(
            "contract cases not in contract_suite!'s list (so no adapter runs them): {}",
            unlisted.join(", ")
        ));
    }
    let undocumented = undocumented_routes(&read("crates/http/src/lib.rs")?, &read("docs/api.md")?);
    if !undocumented.is_empty() {
        return Err(format!(
            "routes missing from docs/api.md: {}",
            undocumented.join(", ")
        ));
    }
    let readme = read("README.md")?;
    let missing: Vec<String> = env_keys(&read("crates/buzzgate/src/config.rs")?)
        .into_iter()
        .filter(|k| !readme.contains(&format!("`{k}`")))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "settings missing from the README's configuration table: {}",
            missing.join(", ")
        ));
    }
    eprintln!(
        "tidy: domain is pure; no stubs; every contract case runs; every route and setting is documented"
    );
    Ok(())
}

/// The public contract cases (`pub async fn NAME(p: &Ports)`) that the suite's list in
/// `contract_suite!` does not name.
fn unlisted_cases(cases: &str, suite: &str) -> Vec<String> {
    let list = suite
        .split_once("contract_suite!(@cases $fixture;")
        .map(|(_, rest)| rest.split(");").next().unwrap_or(""))
        .unwrap_or("");
    let listed: Vec<&str> = list
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|w| !w.is_empty())
        .collect();
    cases
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub async fn "))
        .filter(|rest| rest.contains("(p: &Ports)"))
        .filter_map(|rest| rest.split('(').next())
        .filter(|name| !listed.contains(name))
        .map(str::to_owned)
        .collect()
}

/// The routes of the router (`.route("PATH"`, the nested OAuth ones under each `.nest`
/// prefix) that `docs` never names as a whole path.
fn undocumented_routes(router: &str, docs: &str) -> Vec<String> {
    let flat: String = router.split_whitespace().collect();
    let quoted_after = |marker: &str| -> Vec<String> {
        flat.split(marker)
            .skip(1)
            .filter_map(|rest| rest.split('"').next())
            .map(str::to_owned)
            .collect()
    };
    let nested_fn = flat
        .split("fnoauth_routes()")
        .nth(1)
        .and_then(|rest| rest.split("\n}").next())
        .map(|body| body.split("fnrouter(").next().unwrap_or(body).to_owned())
        .unwrap_or_default();
    let nested: Vec<String> = nested_fn
        .split(".route(\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_owned)
        .collect();
    let prefixes = quoted_after(".nest(\"");
    // Path parameters compare by position, not name (`{id}` is `{clientId}`).
    let docs = &params_erased(docs);
    let named = |path: &str| {
        let path = &params_erased(path);
        docs.match_indices(path).any(|(i, _)| {
            let before = docs[..i].chars().next_back();
            let after = docs[i + path.len()..].chars().next();
            matches!(before, Some(' ' | '`' | '(' | '\n'))
                && matches!(after, None | Some(' ' | '`' | ')' | '?' | ',' | ';' | '\n'))
        })
    };
    let mut missing = Vec::new();
    for path in quoted_after(".route(\"") {
        let documented = if nested.contains(&path) {
            prefixes.iter().any(|p| named(&format!("{p}{path}")))
        } else {
            named(&path)
        };
        if !documented && !missing.contains(&path) {
            missing.push(path);
        }
    }
    missing
}

/// `text` with every `{name}` written `{}`.
fn params_erased(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_param = false;
    for c in text.chars() {
        match c {
            '{' => {
                in_param = true;
                out.push('{');
            }
            '}' if in_param => {
                in_param = false;
                out.push('}');
            }
            _ if in_param => {}
            _ => out.push(c),
        }
    }
    out
}

/// The environment variables declared in `settings!` (crates/buzzgate/src/config.rs).
fn env_keys(config: &str) -> Vec<String> {
    let Some(block) = config
        .split("settings! {")
        .nth(1)
        .and_then(|rest| rest.split("\n}").next())
    else {
        return Vec::new();
    };
    block
        .lines()
        .filter(|l| !l.trim_start().starts_with("///"))
        .flat_map(|l| {
            l.split('"')
                .skip(1)
                .step_by(2)
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .filter(|w| {
            !w.is_empty()
                && w.chars()
                    .all(|c| c.is_ascii_uppercase() || c == '_' || c.is_ascii_digit())
        })
        .collect()
}

fn memory() -> Result<(), String> {
    let mut c = Command::new("bash");
    c.arg("tests/memory/run.sh");
    run(c)
}

fn bench() -> Result<(), String> {
    let mut c = Command::new("python3");
    c.arg("tests/bench/bench.py");
    run(c)
}

/// The cluster-and-faults harness of issue 14 (`tests/chaos/chaos.py`) against a release build
/// (the one `BUZZGATE_BIN` names, if set).
fn chaos() -> Result<(), String> {
    let skip_build = env::var("CHAOS_SKIP_BUILD").is_ok_and(|v| v == "1")
        || env::var_os("BUZZGATE_BIN").is_some_and(|v| !v.is_empty());
    if !skip_build {
        let mut b = cargo();
        b.args([
            "build",
            "--release",
            "-q",
            "-p",
            "buzzgate",
            "--bin",
            "buzzgate",
        ]);
        run(b)?;
    }
    let mut c = Command::new("python3");
    c.arg("tests/chaos/chaos.py");
    run(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUITE: &str = "contract_suite!(@cases $fixture;\n  a_case, b_case,\n  c_case);";

    #[test]
    fn a_case_missing_from_the_suite_is_caught() {
        let cases = "pub async fn a_case(p: &Ports) {}\npub async fn b_case(p: &Ports) {}\n\
                     pub async fn c_case(p: &Ports) {}\npub async fn helper(x: u8) {}\n";
        assert!(unlisted_cases(cases, SUITE).is_empty());
        let removed = "contract_suite!(@cases $fixture;\n  a_case,\n  c_case);";
        assert_eq!(unlisted_cases(cases, removed), vec!["b_case"]);
    }

    #[test]
    fn an_undocumented_route_is_caught() {
        let router = "fn oauth_routes() -> Router {\n    Router::new()\n        .route(\"/token\", post(t))\n}\n\
                      pub fn router() {\n    Router::new().nest(\"/api/auth/oauth\", oauth)\n        .route(\n            \"/healthz\",\n            get(h))\n        .route(\"/api/v1/me\", get(me))\n}\n";
        let docs = "`POST /api/auth/oauth/token` and `GET /healthz`, `GET /api/v1/me`.";
        assert!(undocumented_routes(router, docs).is_empty());
        let docs = "`POST /api/auth/oauth/token` and `GET /healthz`; `GET /api/v1/meow`.";
        assert_eq!(undocumented_routes(router, docs), vec!["/api/v1/me"]);
        let router = router.replace("/api/v1/me", "/api/v1/things/{id}");
        let docs = "`POST /api/auth/oauth/token`, `GET /healthz`, `GET /api/v1/things/{thingId}`.";
        assert!(
            undocumented_routes(&router, docs).is_empty(),
            "parameters match by position"
        );
        let docs = "`POST /token` and `GET /healthz`, `GET /api/v1/things/{id}`.";
        assert_eq!(
            undocumented_routes(&router, docs),
            vec!["/token"],
            "a nested route is named with its prefix"
        );
    }

    #[test]
    fn settings_are_read_from_their_declaration() {
        let config = "settings! {\n    /// The \"address\".\n    listen: String = \"x\".into(), \"BUZZGATE_LISTEN\", text;\n    db: String = \"y\".into(), \"DATABASE_URL\", text;\n}\n";
        assert_eq!(env_keys(config), vec!["BUZZGATE_LISTEN", "DATABASE_URL"]);
    }
}
