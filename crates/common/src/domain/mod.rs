//! The pure core: decisions over plain data, no I/O.
//!
//! Nothing here imports an AWS SDK, Lambda, an HTTP client or tokio; the functions gather data
//! through ports, ask the domain what to do, and do it.

pub mod cron;
pub mod labels;
pub mod runner;
pub mod scale_down;
pub mod scale_up;
pub mod syncer;
pub mod webhook;
