//! What the function benchmarks (`tests/benches/`) share: cold starts of a built function
//! binary under the Lambda runtime emulator, split into its parts, and the CPU clock of the
//! calling thread for warm per-event costs.

#![allow(clippy::print_stdout)] // a report printer

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::lambda_emulator::LambdaFunction;

/// How a function's cold start went, per process, in milliseconds.
#[derive(Debug, Default)]
pub struct ColdStarts {
    /// Process start → ready for the first event (init, including the SSM read).
    pub ready: Vec<f64>,
    /// Of which waiting on moto's SSM (`parameters_ms` of the function's ready log line).
    pub parameters: Vec<f64>,
    /// The first event's handling.
    pub first: Vec<f64>,
    /// Of which waiting on moto for the event's send (`queue_ms` of its log line).
    pub send: Vec<f64>,
    /// Process start → first answer.
    pub total: Vec<f64>,
}

/// Where a function logs the timings a cold start is split by.
pub struct LogLines<'a> {
    /// The `message` of the ready line, with `parameters_ms`.
    pub ready: &'a str,
    /// The `message` of the per-event line, with `queue_ms`.
    pub handled: &'a str,
}

impl ColdStarts {
    /// `rounds` fresh processes of `binary`, each invoked once with `event`; `check` asserts
    /// the answer. One more process first warms moto's backends and the page cache.
    pub async fn measure(
        binary: &Path,
        name: &str,
        env: &[(String, String)],
        rounds: usize,
        event: &Value,
        lines: &LogLines<'_>,
        check: impl Fn(&Value),
    ) -> Self {
        let mut out = Self::default();
        for round in 0..=rounds {
            let f = LambdaFunction::spawn(binary, &format!("{name}-{round}"), env, Duration::from_secs(10)).await;
            let init = f.ready(Duration::from_secs(20)).await.expect("function ready");
            let answer = f.invoke_unsettled(event.clone()).await.expect("answer");
            check(&answer);
            let to_answer = f.spawned_at.elapsed();
            let handler = f.last_handler_time().unwrap_or_default();
            let logs = f.json_logs();
            let field = |message: &str, key: &str| {
                logs.iter().find(|l| l["message"] == message).and_then(|l| l[key].as_f64()).unwrap_or(0.0)
            };
            if round == 0 {
                continue;
            }
            out.ready.push(init.as_secs_f64() * 1000.0);
            out.parameters.push(field(lines.ready, "parameters_ms"));
            out.first.push(handler.as_secs_f64() * 1000.0);
            out.send.push(field(lines.handled, "queue_ms"));
            out.total.push(to_answer.as_secs_f64() * 1000.0);
        }
        out
    }

    /// Process start → first answer without the time spent waiting on moto.
    pub fn own(&self) -> Vec<f64> {
        (0..self.total.len()).map(|i| self.total[i] - self.parameters[i] - self.send[i]).collect()
    }

    /// The Markdown table of `docs/performance.md`; `send` names what the first event waits on.
    pub fn print(&self, title: &str, send: &str) {
        println!("## {title} ({} processes, ms: p50 / min / max)\n", self.total.len());
        println!("| part | p50 | min | max |\n|---|---|---|---|");
        let own = self.own();
        for (name, v) in [
            ("process start → ready (init, incl. SSM)".to_string(), &self.ready),
            ("  of which waiting on moto SSM GetParameters".to_string(), &self.parameters),
            (format!("first event handled (incl. {send})"), &self.first),
            (format!("  of which waiting on moto {send}"), &self.send),
            ("process start → first answer".to_string(), &self.total),
            ("process start → first answer, moto waits removed".to_string(), &own),
        ] {
            let (min, max) = (v.iter().copied().fold(f64::MAX, f64::min), v.iter().copied().fold(0.0, f64::max));
            println!("| {name} | {:.1} | {min:.1} | {max:.1} |", crate::percentile(v, 0.5).unwrap_or(f64::NAN));
        }
        println!();
    }
}

/// CPU time of the calling thread, from the scheduler (nanosecond resolution).
pub fn thread_cpu() -> Duration {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    Duration::from_nanos(text.split_whitespace().next().and_then(|v| v.parse().ok()).unwrap_or(0))
}
