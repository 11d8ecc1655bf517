//! `CodeStore`: a code is a Redis hash (`rec` = the record JSON, `fam` = the family of its
//! redemption); `HSETNX fam` inside one script makes the single-use take atomic.

use std::sync::LazyLock;

use async_trait::async_trait;
use buzzgate_domain::StoreError;
use buzzgate_domain::grant::authorization_code::{AuthorizationCodeRecord, CodeRedemption};
use buzzgate_domain::ids::FamilyId;
use buzzgate_domain::ports::{CodeStore, StoreResult};
use buzzgate_domain::token::TokenHash;
use time::OffsetDateTime;

use crate::{RedisStore, from_json, micros, to_json};

/// KEYS[1] = code key, KEYS[2] = expiry index; ARGV = record JSON, family or '', TTL ms,
/// expiry score, member. Replaces the code (a re-insert starts it afresh).
const INSERT_LUA: &str = r#"
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'rec', ARGV[1])
if ARGV[2] ~= '' then redis.call('HSET', KEYS[1], 'fam', ARGV[2]) end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[5])
-- The index lives as long as its longest-lived member, so every key has a TTL.
if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[3]) then redis.call('PEXPIRE', KEYS[2], ARGV[3]) end
return 1
"#;

/// KEYS[1] = code key; ARGV[1] = family. Returns nil (unknown), {1, rec} (this caller won)
/// or {0, winner's family}. HSETNX never touches the key's expiry.
const REDEEM_LUA: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
if redis.call('HSETNX', KEYS[1], 'fam', ARGV[1]) == 1 then
  return {1, redis.call('HGET', KEYS[1], 'rec')}
end
return {0, redis.call('HGET', KEYS[1], 'fam')}
"#;

static INSERT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(INSERT_LUA));
static REDEEM: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(REDEEM_LUA));

fn parse_family(s: &str) -> StoreResult<FamilyId> {
    FamilyId::parse(s).ok_or_else(|| StoreError::Internal("stored family is not a uuid".into()))
}

#[async_trait]
impl CodeStore for RedisStore {
    async fn insert(&self, code: &AuthorizationCodeRecord) -> StoreResult<()> {
        let mut rec = code.clone();
        let family = rec.redeemed.take();
        let json = to_json(&rec)?;
        let mut inv = INSERT.prepare_invoke();
        inv.key(self.hkey("code", &code.hash))
            .key(format!("{}codes:exp", self.prefix))
            .arg(json)
            .arg(family.map(|f| f.to_string()).unwrap_or_default())
            .arg(self.record_ttl_ms(code.issued_at, code.expires_at))
            .arg(micros(code.expires_at))
            .arg(code.hash.to_hex());
        let mut conn = self.conn();
        let _: i64 = self.run(inv.invoke_async(&mut conn)).await?;
        Ok(())
    }

    async fn redeem(&self, hash: &TokenHash, family: FamilyId) -> StoreResult<CodeRedemption> {
        let mut inv = REDEEM.prepare_invoke();
        inv.key(self.hkey("code", hash)).arg(family.to_string());
        let mut conn = self.conn();
        let out: Option<(i64, String)> = self.run(inv.invoke_async(&mut conn)).await?;
        Ok(match out {
            None => CodeRedemption::NotFound,
            Some((1, json)) => {
                let mut rec: AuthorizationCodeRecord = from_json(&json)?;
                rec.redeemed = Some(family);
                CodeRedemption::Redeemed(rec)
            }
            Some((_, fam)) => CodeRedemption::AlreadyRedeemed {
                family: Some(parse_family(&fam)?),
            },
        })
    }

    async fn sweep_expired(&self, before: OffsetDateTime, batch: u32) -> StoreResult<u32> {
        self.sweep("codes:exp", "code", None, before, batch).await
    }
}
