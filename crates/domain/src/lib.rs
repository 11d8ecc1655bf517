//! # buzzgate-domain
//!
//! The pure core of Buzzgate: every rule of the OAuth contract (scopes, clients, PKCE, grants,
//! token lifecycle, consent, Buzz budgets, audit), the ports it needs from the outside world,
//! and the services (use cases) that run on those ports. No I/O happens here: time and
//! randomness come in through [`ports::Clock`] and [`ports::Random`].

pub mod audit;
pub mod authorize;
pub mod buzz;
pub mod catalogue;
pub mod client;
pub mod consent;
pub mod error;
pub mod grant;
pub mod ids;
#[cfg(any(test, feature = "memory"))]
pub mod memory;
pub mod pkce;
pub mod ports;
pub mod rate;
pub mod resource;
pub mod scope;
pub mod service;
pub mod token;
pub mod user;

pub use catalogue::{Catalogue, Need};
pub use error::{Error, Result, StoreError};
pub use scope::{OidcScopes, RequestedScope, Scope, ScopeValue};
