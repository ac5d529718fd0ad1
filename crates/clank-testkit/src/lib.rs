//! Shared test suites and fixtures for Clank backends.
