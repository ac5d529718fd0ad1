//! Runnable examples of Clank used as a library; see `deploy.rs`.
