//! `cargo xtask <task>`: the project's dev tasks as a plain Rust binary (no Makefile).
//!
//! - `ci`: format check, clippy with warnings denied, then every test of the workspace.
//! - `test`: the tests only (nextest when installed, else `cargo test`).
//! - `tidy`: repository rules that a compiler cannot check: no stubs, the domain stays pure,
//!   every contract case is in the suite's list, every route is in `docs/api.md`, and the
//!   configuration table of `docs/operations.md` is the one the `settings!` declaration
//!   generates. `tidy --fix` rewrites that table first.
//! - `settings`: rewrites that table (between `<!-- settings:begin` and `<!-- settings:end -->`)
//!   from the declaration in `crates/buzzgate/src/config.rs`.
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
        "tidy" if env::args().nth(2).as_deref() == Some("--fix") => {
            write_settings().and_then(|()| tidy())
        }
        "tidy" => tidy(),
        "settings" => write_settings(),
        "memory" => memory(),
        "bench" => bench(),
        "chaos" => chaos(),
        _ => {
            eprintln!("usage: cargo xtask <ci|test|tidy [--fix]|settings|memory|bench|chaos>");
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
    let ops = read(OPERATIONS)?;
    if with_settings_table(&ops, &settings_table(&read(CONFIG)?)?)? != ops {
        return Err(format!(
            "the configuration table of {OPERATIONS} is not the one the settings! declaration \
             ({CONFIG}) generates: run `cargo xtask settings` (or `cargo xtask tidy --fix`)"
        ));
    }
    eprintln!(
        "tidy: domain is pure; no stubs; every contract case runs; every route is documented; the settings table is generated"
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

/// Where every setting is declared, and where its table lives.
const CONFIG: &str = "crates/buzzgate/src/config.rs";
const OPERATIONS: &str = "docs/operations.md";
const TABLE_BEGIN: &str = "<!-- settings:begin";
const TABLE_END: &str = "<!-- settings:end -->";

/// `cargo xtask settings`: rewrites the configuration table of docs/operations.md.
fn write_settings() -> Result<(), String> {
    let read =
        |path: &str| std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"));
    let ops = read(OPERATIONS)?;
    let new = with_settings_table(&ops, &settings_table(&read(CONFIG)?)?)?;
    if new == ops {
        eprintln!("settings: {OPERATIONS} is up to date");
        return Ok(());
    }
    std::fs::write(OPERATIONS, new).map_err(|e| format!("cannot write {OPERATIONS}: {e}"))?;
    eprintln!("settings: rewrote the configuration table of {OPERATIONS}");
    Ok(())
}

/// One entry of the `settings!` declaration:
/// `/// doc…` then `field: Type = default, "ENV", parser;`.
#[derive(Debug, PartialEq)]
struct Setting {
    field: String,
    default: String,
    env: String,
    parser: String,
    doc: Vec<String>,
}

/// The entries of the `settings! { … }` invocation in `config`, in declaration order.
fn declared_settings(config: &str) -> Result<Vec<Setting>, String> {
    let block = config
        .split_once("\nsettings! {")
        .and_then(|(_, rest)| rest.split_once("\n}"))
        .map(|(block, _)| block)
        .ok_or("no `settings! { … }` block in the configuration")?;
    let mut settings = Vec::new();
    let mut doc = Vec::new();
    let mut entry = String::new();
    for line in block.lines() {
        let t = line.trim();
        if let Some(d) = t.strip_prefix("///") {
            if !entry.trim().is_empty() {
                return Err(format!(
                    "a doc comment inside a setting: `{}`",
                    entry.trim()
                ));
            }
            doc.push(d.strip_prefix(' ').unwrap_or(d).trim_end().to_owned());
            continue;
        }
        if t.starts_with("//") {
            continue;
        }
        entry.push(' ');
        entry.push_str(t);
        while let Some(end) = top_level(&entry, ';').first().copied() {
            let setting = parse_setting(&entry[..end], std::mem::take(&mut doc))?;
            settings.push(setting);
            entry = entry[end + 1..].to_owned();
        }
    }
    if !entry.trim().is_empty() {
        return Err(format!("a setting without its `;`: `{}`", entry.trim()));
    }
    Ok(settings)
}

/// The byte offsets of `sep` in `text` outside strings and brackets.
fn top_level(text: &str, sep: char) -> Vec<usize> {
    let (mut depth, mut in_str, mut escaped) = (0i32, false, false);
    let mut at = Vec::new();
    for (i, c) in text.char_indices() {
        if in_str {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_str = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_str = true,
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            _ if c == sep && depth == 0 => at.push(i),
            _ => {}
        }
    }
    at
}

fn parse_setting(entry: &str, doc: Vec<String>) -> Result<Setting, String> {
    let entry = entry.trim();
    let bad = |why: &str| format!("cannot read the setting `{entry}`: {why}");
    let (field, rest) = entry.split_once(':').ok_or_else(|| bad("no `field:`"))?;
    let field = field.trim();
    if field.is_empty() || !field.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(bad("the field is not a name"));
    }
    let eq = *top_level(rest, '=')
        .first()
        .ok_or_else(|| bad("no `= default`"))?;
    let value = &rest[eq + 1..];
    let commas = top_level(value, ',');
    let [.., env_at, parser_at] = commas[..] else {
        return Err(bad("expected `default, \"ENV\", parser`"));
    };
    let env = value[env_at + 1..parser_at].trim();
    let env = env
        .strip_prefix('"')
        .and_then(|e| e.strip_suffix('"'))
        .ok_or_else(|| bad("the variable is not a string literal"))?;
    if doc.iter().all(|l| l.trim().is_empty()) {
        return Err(format!(
            "{env} has no doc comment: its `///` comment is its meaning in {OPERATIONS}"
        ));
    }
    Ok(Setting {
        field: field.to_owned(),
        default: value[..env_at].trim().to_owned(),
        env: env.to_owned(),
        parser: value[parser_at + 1..].trim().to_owned(),
        doc,
    })
}

/// The default column: the value as an operator would write it, in backticks, or `unset`
/// (an absent value) or `empty` (an empty string). The buzzgate crate's test
/// `the_documented_defaults_are_the_defaults` reads each back through the setting's parser
/// and compares it with `Config::default()`, so a wrong rendering fails there.
fn default_cell(default: &str, parser: &str) -> Option<String> {
    let d = default.trim();
    let code = |v: &str| (!v.contains(['`', '|', '\\'])).then(|| format!("`{v}`"));
    let literal = d
        .strip_suffix(".into()")
        .or_else(|| d.strip_suffix(".to_owned()"))
        .or_else(|| d.strip_suffix(".to_string()"))
        .or_else(|| {
            d.strip_prefix("String::from(")
                .and_then(|r| r.strip_suffix(')'))
        })
        .and_then(|s| s.strip_prefix('"')?.strip_suffix('"'));
    if let Some(s) = literal {
        return if s.is_empty() {
            Some("empty".into())
        } else {
            code(s)
        };
    }
    let word = |yes: bool| {
        let (on, off) = match parser {
            "parse_open" => ("open", "off"),
            "parse_on" => ("on", "off"),
            _ => ("true", "false"),
        };
        code(if yes { on } else { off })
    };
    match d {
        "String::new()" => return Some("empty".into()),
        "None" | "Secret(None)" if parser == "parse_limit" => return code("off"),
        "None" | "Secret(None)" => return Some("unset".into()),
        "true" | "false" => return word(d == "true"),
        _ => {}
    }
    if let Some(inner) = d.strip_prefix("Some(").and_then(|r| r.strip_suffix(')')) {
        return default_cell(inner, parser);
    }
    // A number, maybe with `_` separators, a fraction and a type suffix (`1_000u64`, `0.5`).
    let (number, suffix) = d.split_at(
        d.find(|c: char| !(c.is_ascii_digit() || c == '_' || c == '.'))
            .unwrap_or(d.len()),
    );
    let suffixes = [
        "", "u8", "u16", "u32", "u64", "usize", "i8", "i16", "i32", "i64", "isize", "f32", "f64",
    ];
    if number.starts_with(|c: char| c.is_ascii_digit())
        && number.ends_with(|c: char| c.is_ascii_digit())
        && number.matches('.').count() <= 1
        && suffixes.contains(&suffix)
    {
        return code(&number.replace('_', ""));
    }
    // An enum's variant (`LogFormat::Text`): its name in snake case.
    let (path, variant) = d.rsplit_once("::")?;
    if path.is_empty()
        || !path
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
        || !variant.starts_with(|c: char| c.is_ascii_uppercase())
        || !variant.chars().any(|c| c.is_ascii_lowercase())
        || !variant.chars().all(|c| c.is_ascii_alphanumeric())
    {
        return None;
    }
    let mut snake = String::new();
    for (i, c) in variant.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            snake.push('_');
        }
        snake.push(c.to_ascii_lowercase());
    }
    code(&snake)
}

/// The meaning column: the doc comment on one line, rustdoc links as plain code, `|` escaped.
fn meaning_cell(doc: &[String]) -> String {
    let text = doc
        .iter()
        .map(|l| l.trim())
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    // [`Name`] (an intra-doc link, not followed by `(url)`) reads as `Name`.
    while let Some(i) = rest.find("[`") {
        let Some(j) = rest[i..].find("`]").map(|j| i + j) else {
            break;
        };
        out.push_str(&rest[..i]);
        if rest[j + 2..].starts_with('(') {
            out.push_str(&rest[i..j + 2]);
        } else {
            out.push_str(&rest[i + 1..j + 1]);
        }
        rest = &rest[j + 2..];
    }
    out.push_str(rest);
    out.replace('|', "\\|")
}

/// The TOML key of a variable: lower case, without `BUZZGATE_` (as config.rs's `file_key`).
fn file_key(env: &str) -> String {
    env.strip_prefix("BUZZGATE_")
        .unwrap_or(env)
        .to_ascii_lowercase()
}

/// The generated table, markers included, for the declaration in `config`.
fn settings_table(config: &str) -> Result<String, String> {
    let settings = declared_settings(config)?;
    if settings.is_empty() {
        return Err(format!("no settings declared in {CONFIG}"));
    }
    let mut out = format!(
        "{TABLE_BEGIN}: generated by `cargo xtask settings` from the settings! declaration in \
         {CONFIG}; edit there -->\n\
         | variable | file key | default | meaning |\n\
         |---|---|---|---|\n"
    );
    for s in &settings {
        let default = default_cell(&s.default, &s.parser).ok_or_else(|| {
            format!(
                "cannot show the default of {} (`{}` with `{}`) in {OPERATIONS}: \
                 teach xtask's default_cell to write it as an operator would",
                s.env, s.default, s.parser
            )
        })?;
        out.push_str(&format!(
            "| `{}` | `{}` | {default} | {} |\n",
            s.env,
            file_key(&s.env),
            meaning_cell(&s.doc)
        ));
    }
    out.push_str(TABLE_END);
    Ok(out)
}

/// `doc` with the text from its begin marker to its end marker replaced by `table`.
fn with_settings_table(doc: &str, table: &str) -> Result<String, String> {
    let missing = || {
        format!(
            "{OPERATIONS} has no `{TABLE_BEGIN} -->` … `{TABLE_END}` markers (under its \
             \"Configuration\" heading) for the settings table"
        )
    };
    let begin = doc.find(TABLE_BEGIN).ok_or_else(missing)?;
    let end = doc[begin..]
        .find(TABLE_END)
        .map(|i| begin + i + TABLE_END.len())
        .ok_or_else(missing)?;
    Ok(format!("{}{table}{}", &doc[..begin], &doc[end..]))
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

    const DECLARATION: &str = "use x;\n\nmacro_rules! settings {\n    () => {};\n}\n\nsettings! {\n    /// The \"address\" | port.\n    listen: String = \"127.0.0.1:8080\".into(), \"BUZZGATE_LISTEN\", text;\n    /// Per minute;\n    /// see [`parse_limit`] and [docs](x.md).\n    rate: Option<u32> = Some(1_200), \"BUZZGATE_RATE\", parse_limit;\n    /// Off by default.\n    limit: Option<u32> = None,\n        \"BUZZGATE_LIMIT\",\n        parse_limit;\n    /// A map.\n    map: Option<HashMap<String, u32>> = None, \"BUZZGATE_MAP\", map;\n}\n";

    #[test]
    fn settings_are_read_from_their_declaration() {
        let s = declared_settings(DECLARATION).unwrap();
        let envs: Vec<&str> = s.iter().map(|s| s.env.as_str()).collect();
        assert_eq!(
            envs,
            [
                "BUZZGATE_LISTEN",
                "BUZZGATE_RATE",
                "BUZZGATE_LIMIT",
                "BUZZGATE_MAP"
            ]
        );
        assert_eq!(s[0].field, "listen");
        assert_eq!(s[0].default, "\"127.0.0.1:8080\".into()");
        assert_eq!(s[0].parser, "text");
        assert_eq!(
            s[1].doc,
            ["Per minute;", "see [`parse_limit`] and [docs](x.md)."]
        );
        assert_eq!(
            (s[2].default.as_str(), s[2].parser.as_str()),
            ("None", "parse_limit"),
            "an entry may span lines"
        );
        assert_eq!(s[3].default, "None", "commas inside the type");
        let e = declared_settings("settings! {\n    x: u8 = 1, \"X\", n;\n}\n").unwrap_err();
        assert!(e.contains("no `settings! {"), "{e}");
        let e =
            declared_settings("\nsettings! {\n    x: u8 = 1, \"BUZZGATE_X\", n;\n}\n").unwrap_err();
        assert!(e.contains("BUZZGATE_X has no doc comment"), "{e}");
        let e = declared_settings("\nsettings! {\n    /// X.\n    x: u8 = 1, n;\n}\n").unwrap_err();
        assert!(e.contains("expected `default, \"ENV\", parser`"), "{e}");
    }

    #[test]
    fn every_kind_of_default_is_shown_as_an_operator_writes_it() {
        let cell = |d: &str, p: &str| default_cell(d, p);
        assert_eq!(
            cell("\"127.0.0.1:8080\".into()", "text").unwrap(),
            "`127.0.0.1:8080`"
        );
        assert_eq!(cell("\"{bg}:\".to_owned()", "text").unwrap(), "`{bg}:`");
        assert_eq!(cell("String::from(\"x\")", "text").unwrap(), "`x`");
        assert_eq!(cell("String::new()", "text").unwrap(), "empty");
        assert_eq!(cell("\"\".into()", "text").unwrap(), "empty");
        assert_eq!(cell("None", "some_text").unwrap(), "unset");
        assert_eq!(cell("Secret(None)", "secret").unwrap(), "unset");
        assert_eq!(cell("None", "parse_limit").unwrap(), "`off`");
        assert_eq!(cell("Some(1200)", "parse_limit").unwrap(), "`1200`");
        assert_eq!(cell("10", "between(1, 1000)").unwrap(), "`10`");
        assert_eq!(cell("1_000u64", "at_most(5)").unwrap(), "`1000`");
        assert_eq!(cell("1.0", "parse_ratio").unwrap(), "`1.0`");
        assert_eq!(cell("0.25f64", "parse_ratio").unwrap(), "`0.25`");
        assert_eq!(cell("true", "parse_open").unwrap(), "`open`");
        assert_eq!(cell("false", "parse_open").unwrap(), "`off`");
        assert_eq!(cell("true", "parse_on").unwrap(), "`on`");
        assert_eq!(cell("false", "parse_bool").unwrap(), "`false`");
        assert_eq!(
            cell("LogFormat::Text", "parse_log_format").unwrap(),
            "`text`"
        );
        assert_eq!(cell("Mode::ReadOnly", "mode").unwrap(), "`read_only`");
        for unknown in [
            "Duration::from_secs(5)",
            "1024 * 1024",
            "u32::MAX",
            "1.",
            "1.2.3",
            "1e3",
            "\"a`b\".into()",
            "\"a|b\".into()",
            "x",
        ] {
            assert_eq!(cell(unknown, "p"), None, "{unknown}");
        }
    }

    #[test]
    fn the_table_is_generated_from_the_declaration_and_replaced_between_its_markers() {
        let table = settings_table(DECLARATION).unwrap();
        let rows: Vec<&str> = table.lines().collect();
        assert!(rows[0].starts_with(TABLE_BEGIN) && rows[0].contains("cargo xtask settings"));
        assert_eq!(rows[1], "| variable | file key | default | meaning |");
        assert_eq!(
            rows[3],
            "| `BUZZGATE_LISTEN` | `listen` | `127.0.0.1:8080` | The \"address\" \\| port. |"
        );
        assert_eq!(
            rows[4],
            "| `BUZZGATE_RATE` | `rate` | `1200` | Per minute; see `parse_limit` and [docs](x.md). |"
        );
        assert_eq!(
            rows[5],
            "| `BUZZGATE_LIMIT` | `limit` | `off` | Off by default. |"
        );
        assert_eq!(rows.last(), Some(&TABLE_END));
        let e = settings_table(DECLARATION).map(|_| ()).and(settings_table(
            "\nsettings! {\n    /// D.\n    d: Duration = Duration::from_secs(5), \"BUZZGATE_D\", secs;\n}\n",
        ));
        let e = e.unwrap_err();
        assert!(e.contains("cannot show the default of BUZZGATE_D"), "{e}");
        let file_key_of_database_url =
            settings_table("\nsettings! {\n    /// DB.\n    db: String = String::new(), \"DATABASE_URL\", text;\n}\n")
                .unwrap();
        assert!(
            file_key_of_database_url.contains("| `DATABASE_URL` | `database_url` | empty | DB. |")
        );

        let doc = format!(
            "# Ops\n\n## Configuration\n\nProse.\n\n{TABLE_BEGIN} -->\n| old |\n{TABLE_END}\n\nAfter.\n"
        );
        let new = with_settings_table(&doc, &table).unwrap();
        assert_eq!(
            new,
            format!("# Ops\n\n## Configuration\n\nProse.\n\n{table}\n\nAfter.\n")
        );
        assert_eq!(
            with_settings_table(&new, &table).unwrap(),
            new,
            "stable once written"
        );
        assert_ne!(
            with_settings_table(&new.replace("`1200`", "`1000`"), &table).unwrap(),
            new.replace("`1200`", "`1000`"),
            "an edited table is found out"
        );
        let e = with_settings_table("# Ops\n", &table).unwrap_err();
        assert!(e.contains("settings:begin"), "{e}");
    }
}
