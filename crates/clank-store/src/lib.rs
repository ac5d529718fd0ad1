//! Persistent stores for Clank.
