//! # buzzgate-domain
//!
//! The pure core of Buzzgate: every rule of the OAuth contract (scopes, clients, PKCE, grants,
//! token lifecycle, consent, Buzz budgets, audit), the ports it needs from the outside world,
//! and the services (use cases) that run on those ports. No I/O happens here: time and
//! randomness come in through [`ports::Clock`] and [`ports::Random`].

pub mod buzz;
pub mod error;
pub mod ids;
pub mod ports;
pub mod scope;

pub use error::{Error, Result, StoreError};
pub use scope::Scope;
