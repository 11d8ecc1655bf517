//! The admin commands that read and change apps, users, tokens and the audit log
//! (`buzzgate client list|show|delete`, `user list|ban|unban`, `audit tail`, `token revoke`,
//! `sweep`). Each is one call of a domain service as the operator ([`Caller::operator`]);
//! this module only parses arguments and prints answers, plain or `--json`.

use std::collections::HashSet;
use std::io::BufRead;

use buzzgate_domain::audit::AuditEvent;
use buzzgate_domain::client::Client;
use buzzgate_domain::error::Error;
use buzzgate_domain::ids::ClientId;
use buzzgate_domain::service::Caller;
use buzzgate_domain::service::admin::{AuditFilter, MAX_SEARCH_RESULTS, MAX_USER_PAGE};
use buzzgate_domain::service::maintenance::SweepPolicy;
use buzzgate_domain::user::User;
use serde_json::json;
use time::format_description::well_known::Rfc3339;

use crate::Node;

fn admin() -> Caller {
    Caller::operator()
}

fn words(e: Error) -> String {
    e.description().into_owned()
}

fn out(line: &str) -> Result<(), String> {
    use std::io::Write;
    writeln!(std::io::stdout(), "{line}").map_err(|e| e.to_string())
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

fn client_id(id: &str) -> Result<ClientId, String> {
    ClientId::parse(id).ok_or_else(|| format!("`{id}` is not a client ID"))
}

/// An unknown app named in the operator's words.
fn no_client(id: &ClientId, e: Error) -> String {
    if e.code() == "not_found" {
        format!("no client has the ID {}", id.as_str())
    } else {
        words(e)
    }
}

fn client_json(node: &Node, c: &Client) -> serde_json::Value {
    let cat = node.core.catalogue();
    json!({
        "clientId": c.id.as_str(),
        "name": c.name,
        "description": c.description,
        "ownerId": c.owner.0,
        "confidential": c.is_confidential(),
        "redirectUris": c.redirect_uris.iter().map(|u| u.as_str()).collect::<Vec<_>>(),
        "allowedOrigins": c.allowed_origins.iter().map(|o| o.as_str()).collect::<Vec<_>>(),
        "grants": c.grants.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
        "scopes": cat.names(c.allowed_scopes),
        "accessMode": c.access_mode.as_str(),
        "isVerified": c.is_verified,
        "isResourceServer": c.is_resource_server,
        "createdAt": rfc3339(c.created_at),
        "updatedAt": rfc3339(c.updated_at),
    })
}

fn client_line(c: &Client) -> String {
    let mut flags = vec![
        if c.is_confidential() {
            "confidential"
        } else {
            "public"
        },
        c.access_mode.as_str(),
    ];
    if c.is_verified {
        flags.push("verified");
    }
    if c.is_resource_server {
        flags.push("resource-server");
    }
    format!(
        "{:<36}  owner={:<6} {}  ({})",
        c.id.as_str(),
        c.owner.0,
        c.name,
        flags.join(", ")
    )
}

/// `buzzgate client list [--owner <user>] [--json]`: every app newest first (at most
/// [`MAX_SEARCH_RESULTS`]), or one owner's with their live-token and consent counts.
pub async fn client_list(node: &Node, owner: Option<&str>, json_out: bool) -> Result<(), String> {
    let rows: Vec<(Client, Option<(u64, u64)>)> = match owner {
        Some(name) => {
            let user = crate::cli::find_user(node, name).await?;
            node.core
                .clients()
                .list(&Caller::operator_for(user.id))
                .await
                .map_err(words)?
                .into_iter()
                .map(|s| (s.client, Some((s.active_tokens, s.consents))))
                .collect()
        }
        None => node
            .core
            .admin()
            .search_apps(&admin(), "", MAX_SEARCH_RESULTS)
            .await
            .map_err(words)?
            .into_iter()
            .map(|c| (c, None))
            .collect(),
    };
    for (c, counts) in &rows {
        if json_out {
            let mut v = client_json(node, c);
            if let Some((tokens, consents)) = counts {
                v["activeTokens"] = json!(tokens);
                v["consents"] = json!(consents);
            }
            out(&v.to_string())?;
        } else {
            let mut line = client_line(c);
            if let Some((tokens, consents)) = counts {
                line.push_str(&format!("  tokens={tokens} consents={consents}"));
            }
            out(&line)?;
        }
    }
    if rows.is_empty() && !json_out {
        out("no clients")?;
    }
    Ok(())
}

/// `buzzgate client show <id> [--json]`.
pub async fn client_show(node: &Node, id: &str, json_out: bool) -> Result<(), String> {
    let id = client_id(id)?;
    let c = node
        .core
        .clients()
        .get(&admin(), &id)
        .await
        .map_err(|e| no_client(&id, e))?;
    if json_out {
        return out(&client_json(node, &c).to_string());
    }
    let cat = node.core.catalogue();
    let owner = node
        .core
        .deps
        .users
        .get(c.owner)
        .await
        .ok()
        .flatten()
        .map(|u| format!("{} (id {})", u.username.as_str(), c.owner.0))
        .unwrap_or_else(|| format!("id {}", c.owner.0));
    let lines = [
        format!("client_id:        {}", c.id.as_str()),
        format!("name:             {}", c.name),
        format!("description:      {}", c.description),
        format!("owner:            {owner}"),
        format!(
            "type:             {}",
            if c.is_confidential() {
                "confidential"
            } else {
                "public"
            }
        ),
        format!(
            "redirect URIs:    {}",
            c.redirect_uris
                .iter()
                .map(|u| u.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        ),
        format!(
            "allowed origins:  {}",
            c.allowed_origins
                .iter()
                .map(|o| o.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        ),
        format!(
            "grants:           {}",
            c.grants
                .iter()
                .map(|g| g.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        ),
        format!(
            "scopes:           {}",
            cat.names(c.allowed_scopes).join(" ")
        ),
        format!("access mode:      {}", c.access_mode.as_str()),
        format!(
            "verified:         {}",
            if c.is_verified { "yes" } else { "no" }
        ),
        format!(
            "resource server:  {}",
            if c.is_resource_server { "yes" } else { "no" }
        ),
        format!("created:          {}", rfc3339(c.created_at)),
        format!("updated:          {}", rfc3339(c.updated_at)),
    ];
    for l in lines {
        out(&l)?;
    }
    Ok(())
}

/// `buzzgate client delete <id>`: the app with its tokens (revoked and dropped from caches),
/// codes and consents, as `DELETE /api/v1/oauth/clients/{id}` does.
pub async fn client_delete(node: &Node, id: &str) -> Result<(), String> {
    let id = client_id(id)?;
    node.core
        .clients()
        .delete(&admin(), &id)
        .await
        .map_err(|e| no_client(&id, e))?;
    out(&format!(
        "deleted client {}: its tokens are revoked, its codes and consents gone",
        id.as_str()
    ))
}

fn user_json(u: &User) -> serde_json::Value {
    json!({
        "id": u.id.0,
        "username": u.username.as_str(),
        "email": u.email,
        "emailVerified": u.email_verified,
        "roles": u.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
        "createdAt": rfc3339(u.created_at),
        "bannedAt": u.banned_at.map(rfc3339),
    })
}

/// `buzzgate user list [--json]`: every user in id order.
pub async fn user_list(node: &Node, json_out: bool) -> Result<(), String> {
    let mut after = 0;
    let mut any = false;
    loop {
        let page = node
            .core
            .admin()
            .users(&admin(), after, MAX_USER_PAGE)
            .await
            .map_err(words)?;
        for u in &page {
            any = true;
            if json_out {
                out(&user_json(u).to_string())?;
            } else {
                let roles: Vec<&str> = u.roles.iter().map(|r| r.as_str()).collect();
                out(&format!(
                    "{:>6}  {:<24} {:<32} roles={:<14} {}",
                    u.id.0,
                    u.username.as_str(),
                    u.email.as_deref().unwrap_or("-"),
                    if roles.is_empty() {
                        "-".to_owned()
                    } else {
                        roles.join(",")
                    },
                    match u.banned_at {
                        Some(t) => format!("banned since {}", rfc3339(t)),
                        None => "active".into(),
                    }
                ))?;
            }
        }
        match page.last() {
            Some(last) if page.len() as u32 == MAX_USER_PAGE => after = last.id.0,
            _ => break,
        }
    }
    if !any && !json_out {
        out("no users")?;
    }
    Ok(())
}

/// `buzzgate user ban|unban <username>`. A ban revokes every live token of the user and
/// says how many; lifting it restores none (`AdminService::set_banned`).
pub async fn user_ban(node: &Node, username: &str, banned: bool) -> Result<(), String> {
    let done = node
        .core
        .admin()
        .set_banned(&admin(), username, banned)
        .await
        .map_err(words)?;
    let u = &done.user;
    let tokens = match done.tokens_revoked {
        1 => "1 token".to_owned(),
        n => format!("{n} tokens"),
    };
    out(&match (banned, done.changed) {
        (true, true) => format!(
            "{} (id {}) is banned since {}: revoked {tokens} (access, refresh and API keys); \
             they cannot sign in and get no new tokens",
            u.username.as_str(),
            u.id.0,
            u.banned_at.map(rfc3339).unwrap_or_default()
        ),
        (true, false) => format!(
            "{} (id {}) was already banned since {}: revoked {tokens} issued since",
            u.username.as_str(),
            u.id.0,
            u.banned_at.map(rfc3339).unwrap_or_default()
        ),
        (false, true) => format!(
            "{} (id {}) is no longer banned (tokens revoked by the ban stay revoked)",
            u.username.as_str(),
            u.id.0
        ),
        (false, false) => format!("{} (id {}) was not banned", u.username.as_str(), u.id.0),
    })
}

/// One audit event as `audit query` and `audit tail` print it.
pub fn event_line(e: &AuditEvent, json_out: bool) -> Result<String, String> {
    if json_out {
        return serde_json::to_string(e).map_err(|e| e.to_string());
    }
    let meta: Vec<String> = e.metadata.iter().map(|(k, v)| format!("{k}={v}")).collect();
    Ok(format!(
        "{}  {:<22} user={:<6} client={:<36} {}",
        rfc3339(e.at),
        e.kind.as_str(),
        e.user_id
            .map(|u| u.0.to_string())
            .unwrap_or_else(|| "-".into()),
        e.client_id.as_ref().map(|c| c.as_str()).unwrap_or("-"),
        meta.join(" ")
    ))
}

/// `buzzgate audit tail [-n N] [--follow] [--json]`: the newest `n` events, oldest first;
/// with `follow`, then every new event as it is recorded (polled every second) until Ctrl-C.
pub async fn audit_tail(node: &Node, n: usize, follow: bool, json_out: bool) -> Result<(), String> {
    let filter = AuditFilter {
        limit: Some(n.to_string()),
        ..AuditFilter::default()
    };
    let (_, mut events) = node
        .core
        .admin()
        .audit_filtered(&admin(), &filter)
        .await
        .map_err(words)?;
    events.reverse();
    for e in &events {
        out(&event_line(e, json_out)?)?;
    }
    if !follow {
        if events.is_empty() && !json_out {
            out("no events")?;
        }
        return Ok(());
    }
    // Events at the newest instant seen, so a poll from that instant prints none twice.
    let mut since = events.last().map(|e| e.at);
    let mut seen: HashSet<String> = events
        .iter()
        .filter(|e| Some(e.at) == since)
        .filter_map(|e| serde_json::to_string(e).ok())
        .collect();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    tick.tick().await;
    loop {
        tokio::select! {
            _ = &mut ctrl_c => return Ok(()),
            _ = tick.tick() => {}
        }
        let filter = AuditFilter {
            since: since.map(rfc3339),
            limit: Some("1000".into()),
            ..AuditFilter::default()
        };
        let (_, mut fresh) = match node.core.admin().audit_filtered(&admin(), &filter).await {
            Ok(page) => page,
            Err(e) => {
                eprintln!(
                    "buzzgate: reading the audit log failed ({}); retrying",
                    words(e)
                );
                continue;
            }
        };
        fresh.reverse();
        for e in fresh {
            let key = serde_json::to_string(&e).map_err(|e| e.to_string())?;
            if since == Some(e.at) && seen.contains(&key) {
                continue;
            }
            if since != Some(e.at) {
                since = Some(e.at);
                seen.clear();
            }
            seen.insert(key);
            out(&event_line(&e, json_out)?)?;
        }
    }
}

/// `buzzgate token revoke --stdin`: the token's plaintext from the first line of stdin
/// (never argv, which other users see in `ps`).
pub async fn token_revoke(node: &Node, stdin: bool) -> Result<(), String> {
    if !stdin {
        return Err(
            "give the token on standard input with --stdin (a token on the command line would \
             show in `ps` and the shell history)"
                .into(),
        );
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the token from stdin: {e}"))?;
    let token = line.trim();
    if token.is_empty() {
        return Err("no token on stdin".into());
    }
    let done = node
        .core
        .tokens()
        .revoke_as_admin(&admin(), token)
        .await
        .map_err(|e| {
            if e.code() == "not_found" {
                "no such token (it was never issued here, or has been swept)".to_owned()
            } else {
                words(e)
            }
        })?;
    let whose = format!(
        "user {}{}",
        done.user_id.0,
        done.client_id
            .as_ref()
            .map(|c| format!(", client {}", c.as_str()))
            .unwrap_or_default()
    );
    out(&match (done.kind.as_str(), done.count) {
        (kind, 0) => format!("the {kind} token of {whose} was already revoked"),
        ("refresh", n) => {
            format!("revoked the refresh token of {whose} with its family ({n} tokens)")
        }
        (kind, _) => format!("revoked the {kind} token of {whose}"),
    })
}

/// `buzzgate sweep`: one pass of the sweep every node runs periodically.
pub async fn sweep(node: &Node) -> Result<(), String> {
    let r = node
        .core
        .maintenance()
        .sweep(&SweepPolicy::default())
        .await
        .map_err(words)?;
    out(&format!(
        "swept {} tokens, {} authorization codes, {} device authorizations, {} sessions \
         (expired or revoked over {} minutes ago)",
        r.tokens,
        r.codes,
        r.devices,
        r.sessions,
        SweepPolicy::default().retention.whole_minutes()
    ))
}
