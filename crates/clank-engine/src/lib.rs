//! Clank's deploy engine: drives deployments through their lifecycle with the pure planner,
//! executing its commands through a `Runtime` and a `Proxy`.

pub mod health;
