//! One contract test suite for every adapter of Buzzgate's ports (Dex-style conformance).
//! The suite itself lands with the adapters issue; this crate holds its fixtures.
