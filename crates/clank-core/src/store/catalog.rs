//! The typed layer over a `Store`: records, secondary indexes and uniqueness.
