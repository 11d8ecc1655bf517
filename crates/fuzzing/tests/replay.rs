//! The fuzz targets on stable Rust (issue 14, item 3): every file of `fuzz/corpus/<target>/`
//! and `fuzz/regressions/<target>/` replayed through its target, then a bounded number of
//! deterministic mutations of those files (a seeded xorshift flipping, inserting, deleting
//! and splicing bytes), so `cargo test --workspace` exercises every parser without nightly
//! or libFuzzer. A panic names the target and the input (as a byte string) that caused it.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use buzzgate_fuzzing::TARGETS;

/// Mutations per target, unless the time bound below comes first.
const MUTATIONS: usize = 20_000;
/// The most one target's mutations may take (a debug build is slow; CI machines are shared).
const TIME_BOUND: Duration = Duration::from_secs(4);

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// The files of `fuzz/<kind>/<target>/`, sorted by name (empty when the directory is absent).
fn inputs(kind: &str, target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = fuzz_dir().join(kind).join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("a readable directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).expect("a readable corpus file");
            (p, bytes)
        })
        .collect()
}

/// Runs `f(input)`, turning a panic into a failure that shows the input.
fn run(name: &str, f: fn(&[u8]), input: &[u8], origin: &str) {
    if catch_unwind(AssertUnwindSafe(|| f(input))).is_err() {
        panic!(
            "fuzz target `{name}` panicked on {origin}: {:?}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn every_target_has_a_seed_corpus() {
    for (name, _) in TARGETS {
        let n = inputs("corpus", name).len();
        assert!(n >= 3, "fuzz/corpus/{name}/ has {n} files; seed it");
    }
}

#[test]
fn corpus_and_regressions_replay_without_panics() {
    for (name, f) in TARGETS {
        for kind in ["corpus", "regressions"] {
            for (path, bytes) in inputs(kind, name) {
                run(name, f, &bytes, &path.display().to_string());
            }
        }
    }
}

/// xorshift64*: small, seeded, the same sequence on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Bytes that matter to these grammars, spliced in more often than chance would.
const INTERESTING: &[&[u8]] = &[
    b"&",
    b"=",
    b"%",
    b"%00",
    b"%zz",
    b"%C3%A9",
    b"%FF",
    b"+",
    b" ",
    b",",
    b"\n",
    b"\"",
    b"\\",
    b"{",
    b"}",
    b"[",
    b"]",
    b":",
    b"null",
    b"-",
    b"0",
    b"18446744073709551616",
    b"://",
    b"#",
    b"@",
    b"[::1]",
    b"127.0.0.1",
    b"localhost",
    b"?",
    b"/",
    b"resource",
    b"openid",
    b"\xff",
    b"\xe2\x80\x8b",
];

fn mutate(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut out = seeds[rng.below(seeds.len())].clone();
    for _ in 0..=rng.below(4) {
        let at = rng.below(out.len() + 1);
        match rng.below(6) {
            0 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] ^= 1 << rng.below(8);
            }
            1 => out.insert(at, rng.next() as u8),
            2 if !out.is_empty() => {
                let end = (at + 1 + rng.below(8)).min(out.len());
                out.drain(at.min(end)..end);
            }
            3 => {
                let piece = INTERESTING[rng.below(INTERESTING.len())];
                out.splice(at..at, piece.iter().copied());
            }
            4 => {
                // Splice a slice of another seed in (crossover).
                let other = &seeds[rng.below(seeds.len())];
                let from = rng.below(other.len() + 1);
                let to = (from + rng.below(32)).min(other.len());
                out.splice(at..at, other[from..to].iter().copied());
            }
            _ if !out.is_empty() => {
                // Duplicate a run of bytes (repeats, nesting).
                let from = rng.below(out.len());
                let to = (from + 1 + rng.below(16)).min(out.len());
                let run: Vec<u8> = out[from..to].to_vec();
                out.splice(at..at, run);
            }
            _ => out.push(rng.next() as u8),
        }
    }
    out
}

#[test]
fn deterministic_mutations_of_the_corpus_do_not_panic() {
    for (index, (name, f)) in TARGETS.into_iter().enumerate() {
        let seeds: Vec<Vec<u8>> = ["corpus", "regressions"]
            .into_iter()
            .flat_map(|kind| inputs(kind, name))
            .map(|(_, bytes)| bytes)
            .collect();
        assert!(!seeds.is_empty(), "no corpus for `{name}`");
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (index as u64 + 1));
        let started = Instant::now();
        let mut ran = 0;
        while ran < MUTATIONS && started.elapsed() < TIME_BOUND {
            let input = mutate(&mut rng, &seeds);
            run(name, f, &input, &format!("mutation {ran}"));
            ran += 1;
        }
        assert!(
            ran >= 500,
            "`{name}`: only {ran} mutations in {TIME_BOUND:?}"
        );
    }
}
