//! The command line: `serve`, `migrate`, and the admin commands. Every command reads the same
//! configuration as the server.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use buzzgate_domain::catalogue::BuzzSpend;
use buzzgate_domain::client::{AccessMode, ClientRegistration, GrantType};
use buzzgate_domain::ids::ClientId;
use buzzgate_domain::service::Caller;
use buzzgate_domain::user::{NewUser, Role, Username};
use clap::{Parser, Subcommand};

use crate::config::Config;

#[derive(Debug, Parser)]
#[command(
    name = "buzzgate",
    version,
    about = "An OAuth 2.0 authorization server with Buzz spend caps"
)]
pub struct Cli {
    /// A TOML configuration file (environment variables override it).
    #[arg(long, global = true, env = "BUZZGATE_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve HTTP (default 127.0.0.1:8080 over ./buzzgate.db), creating the schema if needed;
    /// also MCP on `BUZZGATE_MCP_LISTEN` when set.
    Serve,
    /// Run only seed 000's capability in front of another Civitai-compatible server: REST on
    /// `BUZZGATE_LISTEN`, MCP on `BUZZGATE_MCP_LISTEN` (default 127.0.0.1:9090).
    Proxy {
        /// The upstream's base URL, e.g. https://civitai.com or another Buzzgate.
        #[arg(long)]
        upstream: String,
        /// The path of the upstream's OAuth endpoints.
        #[arg(long, default_value = "/api/oauth")]
        upstream_prefix: String,
    },
    /// Create or upgrade the database schema, then exit.
    Migrate,
    /// Ask a running node whether it is ready (`GET /readyz` on `BUZZGATE_LISTEN`, or `--url`):
    /// exit 0 when it answers 200, 1 otherwise. For container `HEALTHCHECK`s
    /// (docs/operations.md).
    Healthcheck {
        /// The URL to ask instead, e.g. http://127.0.0.1:8080/readyz.
        #[arg(long)]
        url: Option<String>,
        /// Seconds to wait for the answer.
        #[arg(long, default_value_t = 3)]
        timeout: u64,
    },
    /// Manage users of the built-in directory.
    #[command(subcommand)]
    User(UserCmd),
    /// Manage OAuth apps.
    #[command(subcommand)]
    Client(ClientCmd),
    /// Manage Buzz balances.
    #[command(subcommand)]
    Buzz(BuzzCmd),
    /// Inspect the configuration.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Read the audit log.
    #[command(subcommand)]
    Audit(AuditCmd),
    /// Manage the id_token signing key (`BUZZGATE_SIGNING_KEY_FILE`).
    #[command(subcommand)]
    Key(KeyCmd),
    /// Revoke tokens.
    #[command(subcommand)]
    Token(TokenCmd),
    /// Run the sweep of expired and revoked rows once (every node also runs it periodically)
    /// and print what it removed.
    Sweep,
}

#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// Revoke a token (access, refresh or API key) by its plaintext, read from the first line
    /// of stdin: a refresh token with its whole family, as RFC 7009 does.
    Revoke {
        /// Read the token from stdin (required: a token in argv shows in `ps`).
        #[arg(long)]
        stdin: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCmd {
    /// Events newest first, filtered as on the admin page and `GET /api/v1/admin/audit`; one
    /// JSON object per line (`--json`) or a table.
    Query {
        /// A username or numeric user id.
        #[arg(long)]
        user: Option<String>,
        /// A client ID.
        #[arg(long)]
        client: Option<String>,
        /// An event kind, e.g. `token.issued`.
        #[arg(long)]
        kind: Option<String>,
        /// From (inclusive): RFC 3339, `YYYY-MM-DDTHH:MM` (UTC) or `YYYY-MM-DD`.
        #[arg(long)]
        since: Option<String>,
        /// To (exclusive), as `--since`.
        #[arg(long)]
        until: Option<String>,
        /// 1 to 1000 (default 100).
        #[arg(long)]
        limit: Option<String>,
        /// Matches to skip, newest first.
        #[arg(long)]
        offset: Option<String>,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// The newest events, oldest first; with `--follow`, then each new one as it is recorded
    /// (polled every second) until Ctrl-C.
    Tail {
        /// How many events (1 to 1000).
        #[arg(short = 'n', long = "lines", default_value_t = 20)]
        n: usize,
        #[arg(short, long)]
        follow: bool,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeyCmd {
    /// Replace the signing key with a new one in the key file (atomically, mode 0600); the old
    /// public key stays in the JWKS for `--keep-hours` so the id_tokens it signed still
    /// verify. Serving nodes read the changed file within 10 s (docs/operations.md).
    Rotate {
        /// How long the old key stays published: at least an id_token's lifetime (1 h) plus
        /// the time it takes to restart every node.
        #[arg(long, default_value_t = crate::keys::DEFAULT_KEEP_HOURS)]
        keep_hours: u32,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCmd {
    /// Load the configuration (file and environment), report what it sets up, and connect to
    /// DATABASE_URL and REDIS_URL (5 s each) to say what is wrong in plain words: exit 0 when
    /// all is well, 1 when a service cannot be reached or refuses, 2 for a bad value, scope
    /// catalogue or unparseable URL.
    Check,
}

#[derive(Debug, Subcommand)]
pub enum UserCmd {
    /// Add a user; the password is read from the first line of stdin.
    Add {
        username: String,
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        password_stdin: bool,
        #[arg(long)]
        admin: bool,
        #[arg(long)]
        tester: bool,
    },
    /// Every user in id order: id, username, email, roles, banned or active.
    List {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Ban a user and revoke every live token of theirs.
    ///
    /// Revokes at once the user's access and refresh tokens of every app and their personal
    /// API keys, and prints how many. The user then cannot sign in, their sessions stop
    /// resolving and no grant issues them tokens. `user unban` restores none of the revoked
    /// tokens. Recorded in the audit log as user.banned. Banning a banned user again revokes
    /// whatever was issued since.
    Ban { username: String },
    /// Lift a user's ban; the tokens it revoked stay revoked.
    ///
    /// The user can sign in again and authorizes their apps anew. Recorded in the audit log
    /// as user.unbanned.
    Unban { username: String },
}

#[derive(Debug, Subcommand)]
pub enum ClientCmd {
    /// Register an app; prints its id and its one-time secret.
    Add {
        #[arg(long)]
        owner: String,
        #[arg(long)]
        name: String,
        #[arg(long = "redirect-uri", required = true)]
        redirect_uris: Vec<String>,
        #[arg(long)]
        description: Option<String>,
        /// A public client (no secret; native and browser apps).
        #[arg(long)]
        public: bool,
        /// Grants in addition to authorization_code and refresh_token (repeatable).
        #[arg(long = "grant")]
        grants: Vec<String>,
        /// The scope ceiling (decimal mask or names); default Full.
        #[arg(long)]
        scopes: Option<String>,
        /// May spend Buzz and introspect tokens for users (SPEC 3.6).
        #[arg(long)]
        resource_server: bool,
        /// Print `{"clientId": …, "clientSecret": …}`.
        #[arg(long)]
        json: bool,
    },
    /// Give an app the "Verified" badge.
    Verify { id: String },
    /// Set an app's access mode: open, testers or disabled.
    AccessMode { id: String, mode: String },
    /// Every app newest first (at most 200), or one owner's with their live-token and consent
    /// counts.
    List {
        /// A username: only the apps they own.
        #[arg(long)]
        owner: Option<String>,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// One app's settings.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Delete an app with its tokens (revoked), codes and consents.
    Delete { id: String },
}

#[derive(Debug, Subcommand)]
pub enum BuzzCmd {
    /// Credit a user's balance.
    Credit {
        username: String,
        amount: u64,
        #[arg(long, default_value = "yellow")]
        currency: String,
    },
}

/// The CLI runs on the server's own machine with its configuration: an operator.
fn admin() -> Caller {
    Caller::operator()
}

fn out(line: &str) -> Result<(), String> {
    writeln!(std::io::stdout(), "{line}").map_err(|e| e.to_string())
}

pub(crate) async fn find_user(
    node: &crate::Node,
    name: &str,
) -> Result<buzzgate_domain::user::User, String> {
    let username = Username::parse(name).map_err(|e| e.description().into_owned())?;
    node.core
        .deps
        .users
        .find_by_username(&username)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no user named `{name}`"))
}

/// The readiness URL of the node listening on `listen`: a wildcard address is asked on
/// loopback.
pub fn readiness_url(listen: &str) -> String {
    let host_port = match listen.rsplit_once(':') {
        Some(("0.0.0.0", port)) => format!("127.0.0.1:{port}"),
        Some(("[::]", port)) => format!("[::1]:{port}"),
        _ => listen.to_owned(),
    };
    format!("http://{host_port}/readyz")
}

/// `buzzgate healthcheck`: `Ok` when the node answers its readiness probe with 200.
/// With TLS configured, the node is asked over https and its certificate must be the one
/// configured (`BUZZGATE_TLS_CERT_FILE` is the trusted root); on a loopback address only the
/// name in the certificate is not checked (it names the public host, not 127.0.0.1).
pub async fn healthcheck(cfg: &Config, url: Option<&str>, timeout: u64) -> Result<(), String> {
    let url = url.map_or_else(
        || {
            let url = readiness_url(&cfg.listen);
            match cfg.tls() {
                true => url.replacen("http://", "https://", 1),
                false => url,
            }
        },
        str::to_owned,
    );
    let mut client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(timeout.max(1)))
        .redirect(reqwest::redirect::Policy::none());
    if let (Some(cert_file), true) = (&cfg.tls_cert_file, url.starts_with("https://")) {
        for cert in crate::tls::certificates(cert_file)? {
            let cert = reqwest::Certificate::from_der(&cert).map_err(|e| e.to_string())?;
            client = client.add_root_certificate(cert);
        }
        let loopback = url::Url::parse(&url)
            .ok()
            .and_then(|u| match u.host() {
                Some(url::Host::Ipv4(ip)) => Some(ip.is_loopback()),
                Some(url::Host::Ipv6(ip)) => Some(ip.is_loopback()),
                Some(url::Host::Domain(d)) => Some(d == "localhost"),
                None => None,
            })
            .unwrap_or(false);
        client = client.danger_accept_invalid_hostnames(loopback);
    }
    let client = client.build().map_err(|e| e.to_string())?;
    let res = client
        .get(&url)
        .send()
        .await
        .map_err(|e| format!("{url} did not answer: {e}"))?;
    let status = res.status();
    let body = res.text().await.unwrap_or_default();
    if status.is_success() {
        out(&format!("ready ({url})"))
    } else {
        Err(format!(
            "not ready: {url} answered {status}: {}",
            body.trim()
        ))
    }
}

/// Runs one admin command (everything but `serve`).
pub async fn run_admin(cfg: &Config, cmd: Command) -> Result<(), String> {
    if let Command::Config(ConfigCmd::Check) = cmd {
        return match crate::check::run(cfg).await {
            0 => Ok(()),
            n => Err(format!("the configuration check failed (status {n})")),
        };
    }
    if let Command::Key(KeyCmd::Rotate { keep_hours }) = cmd {
        let path = &cfg.signing_key_file;
        let rotated = crate::keys::rotate(path, keep_hours)?;
        return out(&crate::keys::report(path, &rotated));
    }
    let node = crate::build(cfg, false).await?;
    match cmd {
        Command::Serve | Command::Proxy { .. } | Command::Healthcheck { .. } => {
            Err("serve, proxy and healthcheck are not admin commands".into())
        }
        Command::Config(_) => unreachable!("answered before connecting"),
        Command::Key(_) => unreachable!("answered before connecting"),
        Command::Migrate => {
            // `build` has connected and migrated already.
            out("schema is up to date")
        }
        Command::User(UserCmd::Add {
            username,
            email,
            password_stdin,
            admin: is_admin,
            tester,
        }) => {
            let password = if password_stdin {
                let mut line = String::new();
                std::io::stdin()
                    .lock()
                    .read_line(&mut line)
                    .map_err(|e| format!("cannot read the password from stdin: {e}"))?;
                Some(line.trim_end_matches(['\r', '\n']).to_owned())
            } else {
                None
            };
            let mut roles = Vec::new();
            if is_admin {
                roles.push(Role::Admin);
            }
            if tester {
                roles.push(Role::Tester);
            }
            let new = NewUser {
                username: Username::parse(&username).map_err(|e| e.description().into_owned())?,
                email_verified: email.is_some(),
                email,
                password,
                roles,
            };
            let user = node
                .core
                .sessions()
                .create_user(new)
                .await
                .map_err(|e| e.description().into_owned())?;
            out(&format!(
                "created user {} (id {})",
                user.username.as_str(),
                user.id.0
            ))
        }
        Command::Client(ClientCmd::Add {
            owner,
            name,
            redirect_uris,
            description,
            public,
            grants,
            scopes,
            resource_server,
            json,
        }) => {
            let owner = find_user(&node, &owner).await?;
            let grants = if grants.is_empty() {
                None
            } else {
                let mut all: Vec<String> = GrantType::DEFAULT
                    .iter()
                    .map(|g| g.as_str().to_owned())
                    .collect();
                all.extend(grants);
                Some(all)
            };
            // Names or a mask, read by the node's catalogue when the app is created.
            let allowed_scopes = scopes.map(buzzgate_domain::ScopeValue::Text);
            let reg = ClientRegistration {
                name,
                description,
                redirect_uris,
                allowed_origins: None,
                is_confidential: Some(!public),
                allowed_scopes,
                grants,
                owner_buzz_limit: None,
            };
            let created = node
                .core
                .clients()
                .create(&Caller::operator_for(owner.id), reg)
                .await
                .map_err(|e| e.description().into_owned())?;
            if resource_server {
                node.core
                    .clients()
                    .administer(&admin(), &created.client.id, None, None, Some(true))
                    .await
                    .map_err(|e| e.description().into_owned())?;
            }
            let secret = created.secret.as_ref().map(|s| s.expose().to_owned());
            if json {
                out(&serde_json::json!({
                    "clientId": created.client.id.as_str(),
                    "clientSecret": secret,
                })
                .to_string())
            } else {
                out(&format!("client_id:     {}", created.client.id.as_str()))?;
                match secret {
                    Some(s) => {
                        out(&format!("client_secret: {s}"))?;
                        out("(the secret is shown once; store it now)")
                    }
                    None => out("public client: no secret"),
                }
            }
        }
        Command::Client(ClientCmd::Verify { id }) => {
            let id = ClientId::parse(&id).ok_or("not a client id")?;
            node.core
                .clients()
                .administer(&admin(), &id, Some(true), None, None)
                .await
                .map_err(|e| e.description().into_owned())?;
            out(&format!("client {} is verified", id.as_str()))
        }
        Command::Client(ClientCmd::AccessMode { id, mode }) => {
            let id = ClientId::parse(&id).ok_or("not a client id")?;
            let mode = AccessMode::parse(&mode).ok_or("mode must be open, testers or disabled")?;
            node.core
                .clients()
                .administer(&admin(), &id, None, Some(mode), None)
                .await
                .map_err(|e| e.description().into_owned())?;
            out(&format!(
                "client {} access mode is {}",
                id.as_str(),
                mode.as_str()
            ))
        }
        Command::Audit(AuditCmd::Query {
            user,
            client,
            kind,
            since,
            until,
            limit,
            offset,
            json,
        }) => {
            let filter = buzzgate_domain::service::admin::AuditFilter {
                user,
                client,
                kind,
                since,
                until,
                limit,
                offset,
            };
            let (_, events) = node
                .core
                .admin()
                .audit_filtered(&admin(), &filter)
                .await
                .map_err(|e| e.description().into_owned())?;
            for e in &events {
                out(&crate::admin_cli::event_line(e, json)?)?;
            }
            if !json && events.is_empty() {
                out("no events match")?;
            }
            Ok(())
        }
        Command::Audit(AuditCmd::Tail { n, follow, json }) => {
            crate::admin_cli::audit_tail(&node, n, follow, json).await
        }
        Command::Client(ClientCmd::List { owner, json }) => {
            crate::admin_cli::client_list(&node, owner.as_deref(), json).await
        }
        Command::Client(ClientCmd::Show { id, json }) => {
            crate::admin_cli::client_show(&node, &id, json).await
        }
        Command::Client(ClientCmd::Delete { id }) => {
            crate::admin_cli::client_delete(&node, &id).await
        }
        Command::User(UserCmd::List { json }) => crate::admin_cli::user_list(&node, json).await,
        Command::User(UserCmd::Ban { username }) => {
            crate::admin_cli::user_ban(&node, &username, true).await
        }
        Command::User(UserCmd::Unban { username }) => {
            crate::admin_cli::user_ban(&node, &username, false).await
        }
        Command::Token(TokenCmd::Revoke { stdin }) => {
            crate::admin_cli::token_revoke(&node, stdin).await
        }
        Command::Sweep => crate::admin_cli::sweep(&node).await,
        Command::Buzz(BuzzCmd::Credit {
            username,
            amount,
            currency,
        }) => {
            let user = find_user(&node, &username).await?;
            let balance = node
                .core
                .buzz()
                .credit(&admin(), user.id, &currency, amount)
                .await
                .map_err(|e| e.description().into_owned())?;
            out(&format!(
                "{} now has {balance} {} Buzz",
                user.username.as_str(),
                currency
            ))
        }
    }
}

/// What `buzzgate config check` prints: the settings that shape a node, and the scope
/// catalogue (every scope with its bit, the presets, the always-granted scope).
pub fn config_report(cfg: &Config) -> String {
    let mut r = format!(
        "configuration OK\nlisten {}\nissuer {}\ndatabase {}\nredis {}\n",
        cfg.listen,
        cfg.issuer,
        if cfg.is_postgres() {
            "postgres"
        } else {
            "sqlite"
        },
        if cfg.redis_url.is_some() { "yes" } else { "no" },
    );
    let c = &cfg.scopes;
    r.push_str(&format!(
        "scopes: {} (always granted: {}; API keys manage the account with: {})\n",
        c.scopes().len(),
        c.names(c.always_granted()).join(" "),
        c.name_of(c.account_scope())
    ));
    for s in c.scopes() {
        let mut notes: Vec<String> = Vec::new();
        if !s.aliases.is_empty() {
            notes.push(format!("aliases {}", s.aliases.join(", ")));
        }
        match s.buzz {
            BuzzSpend::None => {}
            BuzzSpend::Capped => notes.push("spends Buzz within caps".into()),
            BuzzSpend::BalanceOnly => notes.push("spends Buzz within the balance".into()),
        }
        let notes = if notes.is_empty() {
            String::new()
        } else {
            format!("  ({})", notes.join("; "))
        };
        r.push_str(&format!(
            "  bit {:>2}  {}  {}{notes}\n",
            s.bit, s.name, s.label
        ));
    }
    for (p, bits) in c.presets() {
        r.push_str(&format!(
            "preset {} = {} ({bits})\n",
            p.name,
            c.names(bits).join(" ")
        ));
    }
    r
}
