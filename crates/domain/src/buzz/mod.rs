//! Buzz spend caps: cron schedules for rollover budgets, the per-app budget shapes of SPEC
//! section 6, and the pure spend / refund decisions an adapter runs inside one transaction.

pub mod budget;
pub mod cron;
pub mod spend;

pub use budget::{Budget, BuzzLimit, CapForm, Currency, Window};
pub use cron::{CronError, CronSchedule};
pub use spend::{
    BudgetStatus, BudgetWindow, IdempotencyKey, LedgerEntry, RefundDecision, SpendPurpose,
    SpendRequest, SpendSubject, budget_statuses, status_windows,
};
