//! Benchmarks of Clank (see benches/README.md).
