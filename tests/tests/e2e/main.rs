#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
//! End-to-end tests: the real function binaries under the Lambda runtime emulator, against
//! moto and the fake GitHub. One test binary (one moto server) for all of them.

mod ami_housekeeper;
mod boot_scripts;
mod demo;
mod deploy;
mod dynamic_labels;
mod eventbridge;
mod github_client;
mod job_retry;
mod pool;
mod redelivery;
mod scale_down;
mod scale_up;
mod ssm_housekeeper;
mod support;
mod syncer;
mod termination_watcher;
mod terraform;
mod warm_pool;
mod webhook;
