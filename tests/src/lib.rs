//! The test world shared by every end-to-end test, benchmark and the local demo:
//!
//! - [`moto`]: the AWS emulator in server mode, one per test process;
//! - [`fake_github`]: a stateful fake of the GitHub REST API;
//! - [`lambda_emulator`]: the Lambda Runtime API, driving the real function binaries;
//! - [`aws_proxy`]: AWS faults moto cannot produce (throttling, capacity, partial fleets);
//! - [`event_source`]: Lambda's SQS event source mapping;
//! - [`function_url`]: a Lambda function URL in front of a function binary (the webhook for the fake GitHub's deliveries);
//! - [`stack`]: a runner configuration set up as Terraform would, and each function's environment;
//! - [`imds`]: the EC2 instance metadata service (IMDSv2) for the runner boot script tests;
//! - [`fixtures`], [`apps`], [`aws`]: real webhook payloads, test GitHub Apps, moto helpers;
//! - [`deploy`]: the Terraform examples applied against moto (`make tf-apply-test`);
//! - [`demo`]: `make demo`, the whole system on one machine with the instance side simulated;
//! - [`bench`]: what the function benchmarks share (cold starts, thread CPU time).
//!
//! The function binaries themselves are `[[bin]]` targets of this crate (`lambda-webhook`...),
//! so `cargo test` builds them once, in the test profile, and the tests find them through
//! `CARGO_BIN_EXE_*`.

pub mod apps;
pub mod aws;
pub mod aws_proxy;
pub mod bench;
pub mod demo;
pub mod deploy;
pub mod event_source;
pub mod fake_github;
pub mod fixtures;
pub mod function_url;
pub mod imds;
pub mod lambda_emulator;
pub mod moto;
pub mod simulation;
pub mod stack;

/// The nearest-rank percentile `p` (0 to 1) of `values`; `None` when there are none.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let last = sorted.len().checked_sub(1)?;
    sorted.get(((p * last as f64).round() as usize).min(last)).copied()
}

#[cfg(test)]
mod tests {
    #[test]
    fn percentile_is_the_nearest_rank() {
        let v = [5.0, 1.0, 4.0, 2.0, 3.0];
        assert_eq!(super::percentile(&v, 0.5), Some(3.0));
        assert_eq!(super::percentile(&v, 0.95), Some(5.0));
        assert_eq!(super::percentile(&v, 0.0), Some(1.0));
        assert_eq!(super::percentile(&[], 0.5), None);
    }
}
