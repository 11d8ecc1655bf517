//! `cargo xtask <task>`: the project's dev tasks as a plain Rust binary (no Makefile).
//!
//! - `ci`: format check, clippy with warnings denied, then every test of the workspace.
//! - `test`: the tests only (nextest when installed, else `cargo test`).
//! - `tidy`: repository rules that a compiler cannot check (no stubs, the domain stays pure).
//! - `memory`: a release node's resident memory while it mints and validates 60,000 tokens
//!   (`tests/memory/run.sh`; minutes, so not part of `ci`).

use std::env;
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let task = env::args().nth(1).unwrap_or_default();
    let result = match task.as_str() {
        "ci" => ci(),
        "test" => test(),
        "tidy" => tidy(),
        "memory" => memory(),
        _ => {
            eprintln!("usage: cargo xtask <ci|test|tidy|memory>");
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
    eprintln!("tidy: domain is pure; no stubs");
    Ok(())
}

fn memory() -> Result<(), String> {
    let mut c = Command::new("bash");
    c.arg("tests/memory/run.sh");
    run(c)
}
