//! The ports: every store and outside dependency as an async trait. Adapters implement them;
//! services run on them.

mod system;

pub use system::{Clock, ManualClock, OsRandom, Random, SeededRandom, SystemClock};
