#!/usr/bin/env bash
# Runs every cargo-fuzz target of fuzz/ for FUZZ_SECONDS each (default 60) on nightly Rust
# (issue 14, item 3). See fuzz/README.md.
#
#   bash tests/fuzz/run.sh                     # every target, 60 s each
#   FUZZ_SECONDS=3600 bash tests/fuzz/run.sh   # the long run
#   FUZZ_TARGETS="scope cimd" bash tests/fuzz/run.sh
#
# Without a nightly toolchain it prints a skip line and exits 0, unless
# BUZZGATE_REQUIRE_SERVICES=1 (then it fails). Any crash, invariant violation, timeout or
# out-of-memory makes it exit non-zero after the remaining targets ran, naming each artifact
# (fuzz/artifacts/<target>/...). Seeds are read from fuzz/corpus/<target>/ and
# fuzz/regressions/<target>/ and never written to: what libFuzzer finds goes to
# fuzz/target/corpus/<target>/ (ignored by git), so repeated runs build on each other.
set -euo pipefail

cd "$(dirname "$0")/../.."

seconds="${FUZZ_SECONDS:-60}"
timeout="${FUZZ_TIMEOUT:-10}"
targets="${FUZZ_TARGETS:-scope redirect_uri token_form token_json buzz_limit cimd}"

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    if [ "${BUZZGATE_REQUIRE_SERVICES:-}" = "1" ]; then
        echo "fuzz: FAIL: no nightly toolchain (rustup toolchain install nightly) and BUZZGATE_REQUIRE_SERVICES=1" >&2
        exit 1
    fi
    echo "fuzz: SKIP: no nightly toolchain; the corpus replay runs on stable in cargo test -p buzzgate-fuzzing"
    exit 0
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz"
    cargo install cargo-fuzz --locked || cargo install cargo-fuzz
fi

start=$(date +%s)
echo "fuzz: building the targets ($(rustup run nightly rustc --version))"
cargo +nightly fuzz build

failed=()
for t in $targets; do
    work="fuzz/target/corpus/$t"
    mkdir -p "$work" "fuzz/artifacts/$t"
    dirs=("$work" "fuzz/corpus/$t")
    [ -d "fuzz/regressions/$t" ] && dirs+=("fuzz/regressions/$t")
    before=$(find "fuzz/artifacts/$t" -type f | sort)
    echo "fuzz: $t for ${seconds}s"
    if cargo +nightly fuzz run "$t" "${dirs[@]}" -- \
        -max_total_time="$seconds" -timeout="$timeout" -print_final_stats=1 </dev/null; then
        echo "fuzz: $t: ok"
    else
        failed+=("$t")
        after=$(find "fuzz/artifacts/$t" -type f | sort)
        new=$(comm -13 <(echo "$before") <(echo "$after") | sed '/^$/d')
        echo "fuzz: $t: FAILED; artifact(s):" >&2
        echo "${new:-  (none written; see the output above)}" | sed 's/^/  /' >&2
        echo "  reproduce: cargo +nightly fuzz run $t <artifact>; then keep it under fuzz/regressions/$t/" >&2
    fi
done

echo "fuzz: done in $(($(date +%s) - start))s"
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: FAIL: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz: PASS: $targets"
