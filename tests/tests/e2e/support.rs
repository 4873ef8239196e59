//! Shared setup for the end-to-end tests.

use std::path::PathBuf;

/// Path of a function binary built for the tests (`lambda-<name>`).
pub fn binary(name: &str) -> PathBuf {
    let path = match name {
        "webhook" => env!("CARGO_BIN_EXE_lambda-webhook"),
        "scale-up" => env!("CARGO_BIN_EXE_lambda-scale-up"),
        "scale-down" => env!("CARGO_BIN_EXE_lambda-scale-down"),
        "syncer" => env!("CARGO_BIN_EXE_lambda-syncer"),
        "dispatcher" => env!("CARGO_BIN_EXE_lambda-dispatcher"),
        other => panic!("no function {other}"),
    };
    PathBuf::from(path)
}

/// `(name, value)` pairs as owned strings.
pub fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}
