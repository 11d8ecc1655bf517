//! Column encodings: timestamps as Unix microseconds, hashes as 32-byte blobs, ids as text,
//! structured values as JSON text, and the decoding of rows back into domain values.

use buzzgate_domain::StoreError;
use buzzgate_domain::ids::{ClientId, FamilyId, SpendId, TokenId, UserId};
use buzzgate_domain::ports::StoreResult;
use buzzgate_domain::token::TokenHash;
use buzzgate_domain::{OidcScopes, Scope};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use time::OffsetDateTime;

/// Unix microseconds (floored), the stored form of every instant.
pub(crate) fn us(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos().div_euclid(1_000)).unwrap_or(i64::MAX)
}

pub(crate) fn opt_us(t: Option<OffsetDateTime>) -> Option<i64> {
    t.map(us)
}

pub(crate) fn from_us(v: i64) -> StoreResult<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(v) * 1_000)
        .map_err(|e| corrupt(format!("timestamp {v}: {e}")))
}

/// The stored form of a revision (a signed 64-bit column; a revision never gets near the top).
pub(crate) fn revision_col(r: u64) -> i64 {
    i64::try_from(r).unwrap_or(i64::MAX)
}

pub(crate) fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(format!("sqlite: undecodable row: {what}"))
}

pub(crate) fn to_json<T: Serialize + ?Sized>(v: &T) -> StoreResult<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Internal(format!("encoding a value: {e}")))
}

pub(crate) fn from_json<T: DeserializeOwned>(s: &str) -> StoreResult<T> {
    serde_json::from_str(s).map_err(corrupt)
}

/// The serde name of a unit enum variant (`"confidential"`, `"open"`, ...).
pub(crate) fn enum_str<T: Serialize>(v: &T) -> StoreResult<String> {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => Ok(s),
        _ => Err(StoreError::Internal(
            "enum does not encode as a string".into(),
        )),
    }
}

pub(crate) fn enum_from<T: DeserializeOwned>(s: String) -> StoreResult<T> {
    serde_json::from_value(serde_json::Value::String(s)).map_err(corrupt)
}

pub(crate) fn u32_of(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// Typed access to the columns of one row; every failure is an `Internal` error naming the
/// column.
pub(crate) struct Cols<'r>(pub(crate) &'r SqliteRow);

impl Cols<'_> {
    pub(crate) fn get<'a, T>(&'a self, col: &str) -> StoreResult<T>
    where
        T: sqlx::Decode<'a, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>,
    {
        self.0
            .try_get::<T, _>(col)
            .map_err(|e| corrupt(format!("{col}: {e}")))
    }

    pub(crate) fn string(&self, col: &str) -> StoreResult<String> {
        self.get::<String>(col)
    }

    pub(crate) fn opt_string(&self, col: &str) -> StoreResult<Option<String>> {
        self.get::<Option<String>>(col)
    }

    pub(crate) fn i64(&self, col: &str) -> StoreResult<i64> {
        self.get::<i64>(col)
    }

    pub(crate) fn opt_i64(&self, col: &str) -> StoreResult<Option<i64>> {
        self.get::<Option<i64>>(col)
    }

    /// A compare-and-set revision (`revision_col` is the way back).
    pub(crate) fn revision(&self) -> StoreResult<u64> {
        u64::try_from(self.i64("revision")?).map_err(|_| corrupt("revision"))
    }

    pub(crate) fn bool(&self, col: &str) -> StoreResult<bool> {
        Ok(self.i64(col)? != 0)
    }

    pub(crate) fn time(&self, col: &str) -> StoreResult<OffsetDateTime> {
        from_us(self.i64(col)?)
    }

    pub(crate) fn opt_time(&self, col: &str) -> StoreResult<Option<OffsetDateTime>> {
        self.opt_i64(col)?.map(from_us).transpose()
    }

    pub(crate) fn hash(&self, col: &str) -> StoreResult<TokenHash> {
        let bytes = self.get::<Vec<u8>>(col)?;
        <[u8; 32]>::try_from(bytes.as_slice())
            .map(TokenHash)
            .map_err(|_| corrupt(format!("{col}: not a 32-byte hash")))
    }

    pub(crate) fn user(&self, col: &str) -> StoreResult<UserId> {
        Ok(UserId(self.i64(col)?))
    }

    pub(crate) fn opt_user(&self, col: &str) -> StoreResult<Option<UserId>> {
        Ok(self.opt_i64(col)?.map(UserId))
    }

    pub(crate) fn scope(&self, col: &str) -> StoreResult<Scope> {
        let v = self.i64(col)?;
        Scope::try_from(v).map_err(|_| corrupt(format!("{col}: scope {v}")))
    }

    pub(crate) fn oidc(&self, col: &str) -> StoreResult<OidcScopes> {
        let v = self.i64(col)?;
        u8::try_from(v)
            .ok()
            .and_then(OidcScopes::from_bits)
            .ok_or_else(|| corrupt(format!("{col}: OIDC scopes {v}")))
    }

    pub(crate) fn opt_scope(&self, col: &str) -> StoreResult<Option<Scope>> {
        match self.opt_i64(col)? {
            None => Ok(None),
            Some(v) => Scope::try_from(v)
                .map(Some)
                .map_err(|_| corrupt(format!("{col}: scope {v}"))),
        }
    }

    pub(crate) fn client(&self, col: &str) -> StoreResult<ClientId> {
        let s = self.string(col)?;
        ClientId::parse(&s).ok_or_else(|| corrupt(format!("{col}: client id")))
    }

    pub(crate) fn opt_client(&self, col: &str) -> StoreResult<Option<ClientId>> {
        self.opt_string(col)?
            .map(|s| ClientId::parse(&s).ok_or_else(|| corrupt(format!("{col}: client id"))))
            .transpose()
    }

    pub(crate) fn family(&self, col: &str) -> StoreResult<Option<FamilyId>> {
        self.opt_string(col)?
            .map(|s| FamilyId::parse(&s).ok_or_else(|| corrupt(format!("{col}: family id"))))
            .transpose()
    }

    pub(crate) fn token_id(&self, col: &str) -> StoreResult<TokenId> {
        let s = self.string(col)?;
        TokenId::parse(&s).ok_or_else(|| corrupt(format!("{col}: token id")))
    }

    pub(crate) fn spend_id(&self, col: &str) -> StoreResult<SpendId> {
        let s = self.string(col)?;
        SpendId::parse(&s).ok_or_else(|| corrupt(format!("{col}: spend id")))
    }

    pub(crate) fn json<T: DeserializeOwned>(&self, col: &str) -> StoreResult<T> {
        from_json(&self.string(col)?)
    }

    pub(crate) fn opt_json<T: DeserializeOwned>(&self, col: &str) -> StoreResult<Option<T>> {
        self.opt_string(col)?.map(|s| from_json(&s)).transpose()
    }
}

/// The stored form of a hash.
pub(crate) fn blob(h: &TokenHash) -> Vec<u8> {
    h.0.to_vec()
}

/// Runs a query and decodes its rows with one of this crate's row decoders (`token_of`,
/// `user_of`, ...): the fetch-map-decode chain written once.
pub(crate) trait Fetch {
    /// The one row the query finds, if any.
    fn optional<T: Send>(
        self,
        pool: &sqlx::SqlitePool,
        decode: fn(&SqliteRow) -> StoreResult<T>,
    ) -> impl std::future::Future<Output = StoreResult<Option<T>>> + Send;
    /// Every row the query finds.
    fn all<T: Send>(
        self,
        pool: &sqlx::SqlitePool,
        decode: fn(&SqliteRow) -> StoreResult<T>,
    ) -> impl std::future::Future<Output = StoreResult<Vec<T>>> + Send;
}

impl<'q> Fetch for sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>> {
    async fn optional<T: Send>(
        self,
        pool: &sqlx::SqlitePool,
        decode: fn(&SqliteRow) -> StoreResult<T>,
    ) -> StoreResult<Option<T>> {
        let row = self.fetch_optional(pool).await.map_err(crate::map_err)?;
        row.as_ref().map(decode).transpose()
    }

    async fn all<T: Send>(
        self,
        pool: &sqlx::SqlitePool,
        decode: fn(&SqliteRow) -> StoreResult<T>,
    ) -> StoreResult<Vec<T>> {
        let rows = self.fetch_all(pool).await.map_err(crate::map_err)?;
        rows.iter().map(decode).collect()
    }
}
