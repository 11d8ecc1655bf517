//! The contract cases, one file per area. Each takes the adapter's [`Ports`] and returns at
//! once when the ports it needs are not provided. Assertions are the port docs of
//! `buzzgate_domain::ports`. Every public case here must be listed in
//! [`contract_suite!`](crate::contract_suite) (`cargo xtask tidy` checks it).

mod audit;
mod buzz;
mod clients;
mod codes;
mod limits;
mod tokens;
mod users;

pub use audit::*;
pub use buzz::*;
pub use clients::*;
pub use codes::*;
pub use limits::*;
pub use tokens::*;
pub use users::*;

/// What every case file uses.
mod prelude {
    pub(super) use std::collections::HashSet;
    pub(super) use std::sync::Arc;
    pub(super) use std::time::Duration as StdDuration;

    pub(super) use buzzgate_domain::audit::{AuditEvent, AuditKind, AuditQuery};
    pub(super) use buzzgate_domain::buzz::{BuzzLimit, Currency, SpendSubject, status_windows};
    pub(super) use buzzgate_domain::consent::Consent;
    pub(super) use buzzgate_domain::grant::authorization_code::CodeRedemption;
    pub(super) use buzzgate_domain::grant::device_code::{
        DevicePoll, DeviceResolution, DeviceStatus,
    };
    pub(super) use buzzgate_domain::grant::refresh_token::RotationDecision;
    pub(super) use buzzgate_domain::ports::{
        Conditional, InsertOutcome, RateWindow, RefundOutcome, SpendOutcome,
    };
    pub(super) use buzzgate_domain::token::{TokenHash, TokenKind};
    pub(super) use buzzgate_domain::user::{Session, Username};
    pub(super) use buzzgate_domain::{Error, Scope, StoreError};
    pub(super) use time::Duration;

    pub(super) use crate::Ports;
    pub(super) use crate::fixtures::{self as fx, now};

    macro_rules! need {
        ($p:expr, $($port:ident),+) => {
            ($(match &$p.$port { Some(x) => x.clone(), None => return },)+)
        };
    }
    pub(super) use need;

    pub(super) const GRACE: Duration = Duration::seconds(10);
}
