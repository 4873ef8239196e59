//! The pure core: decisions over plain data, no I/O.
//!
//! Nothing here imports an AWS SDK, Lambda, an HTTP client or tokio; the functions gather data
//! through ports, ask the domain what to do, and do it.

pub mod ami_housekeeper;
pub mod cron;
pub mod dynamic_labels;
pub mod job_retry;
pub mod labels;
pub mod pool;
pub mod redelivery;
pub mod runner;
pub mod scale_down;
pub mod scale_up;
pub mod ssm_housekeeper;
pub mod syncer;
pub mod termination;
pub mod warm_pool;
pub mod webhook;
