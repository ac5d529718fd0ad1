//! Shared test suites and fixtures for Clank backends.
//!
//! - [`store`]: the `Store` contract, one public async fn per property, and
//!   [`store_contract_tests!`] to instantiate all of them as named tests for a backend.
//! - [`crash`]: the write protocol of the store crash test, whose child process is this
//!   package's `clank-store-crash-writer` binary and whose checker is `tests/crash.rs`.

pub mod crash;
pub mod store;
