//! Label matching between a workflow job and runner configurations (upstream `canRunJob`).
//!
//! Rules, all case-insensitive:
//! - **bidirectional**: the job's labels and one of the configuration's label sets are equal as
//!   sets; an empty job label list never matches. Wins over `exact`.
//! - **exact** ("labels check all"): every job label is in one of the label sets (a subset, not
//!   equality).
//! - neither: any job label is in one of the label sets.
//! - Upstream quirk kept for compatibility: with no job labels the non-bidirectional result is
//!   inverted, so an empty label list matches non-exact configurations and not exact ones.
//!
//! `ghr-` labels never take part in matching: they carry per-job options.

/// Prefix of labels that carry per-job options instead of runner capabilities.
pub const GHR_LABEL_PREFIX: &str = "ghr-";
const GHR_LABEL_MAX_LEN: usize = 128;

/// A job's labels, split into those that take part in matching and sanitised `ghr-` labels.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SplitLabels {
    pub regular: Vec<String>,
    pub ghr: Vec<String>,
}

/// Splits labels; `ghr-` labels that are too long or carry characters outside
/// `[a-zA-Z0-9._/;:-]` are dropped, as upstream does.
pub fn split_labels(labels: &[String]) -> SplitLabels {
    let mut out = SplitLabels::default();
    for label in labels {
        if label.starts_with(GHR_LABEL_PREFIX) {
            let valid = label.len() <= GHR_LABEL_MAX_LEN
                && label.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | ';' | '-' | ':'));
            if valid {
                out.ghr.push(label.clone());
            } else {
                tracing::warn!(label = %label, "dropping invalid ghr- label");
            }
        } else {
            out.regular.push(label.clone());
        }
    }
    out
}

/// Whether a job with `job_labels` (without `ghr-` labels) can run on a configuration whose
/// runners carry any one of `label_sets`.
pub fn can_run_job(job_labels: &[String], label_sets: &[Vec<String>], exact: bool, bidirectional: bool) -> bool {
    let job: Vec<String> = job_labels.iter().map(|l| l.to_lowercase()).collect();
    let sets: Vec<Vec<String>> = label_sets.iter().map(|set| set.iter().map(|l| l.to_lowercase()).collect()).collect();
    if bidirectional {
        return !job.is_empty()
            && sets.iter().any(|set| job.iter().all(|l| set.contains(l)) && set.iter().all(|l| job.contains(l)));
    }
    let matched = if exact {
        sets.iter().any(|set| job.iter().all(|l| set.contains(l)))
    } else {
        sets.iter().any(|set| job.iter().any(|l| set.contains(l)))
    };
    if job.is_empty() { !matched } else { matched }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(labels: &[&str]) -> Vec<String> {
        labels.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn truth_table() {
        let runner = vec![v(&["self-hosted", "linux", "x64"])];
        // (job labels, exact, bidirectional, expected)
        let cases: &[(&[&str], bool, bool, bool)] = &[
            // any-label
            (&["linux"], false, false, true),
            (&["linux", "gpu"], false, false, true),
            (&["windows"], false, false, false),
            // exact = subset
            (&["self-hosted", "linux"], true, false, true),
            (&["self-hosted", "linux", "x64"], true, false, true),
            (&["self-hosted", "linux", "on-demand"], true, false, false),
            // case-insensitive
            (&["Self-Hosted", "LINUX"], true, false, true),
            // bidirectional = set equality, wins over exact
            (&["self-hosted", "linux", "x64"], false, true, true),
            (&["x64", "linux", "self-hosted"], true, true, true),
            (&["self-hosted", "linux"], true, true, false),
            (&["self-hosted", "linux", "x64", "gpu"], false, true, false),
            (&[], false, true, false),
            // empty label list quirk
            (&[], false, false, true),
            (&[], true, false, false),
        ];
        for (job, exact, bidi, expected) in cases {
            assert_eq!(
                can_run_job(&v(job), &runner, *exact, *bidi),
                *expected,
                "job {job:?} exact {exact} bidirectional {bidi}"
            );
        }
    }

    #[test]
    fn any_of_several_label_sets() {
        let sets = vec![v(&["self-hosted", "linux"]), v(&["self-hosted", "arm64"])];
        assert!(can_run_job(&v(&["self-hosted", "arm64"]), &sets, true, false));
        assert!(can_run_job(&v(&["self-hosted", "arm64"]), &sets, false, true));
        assert!(!can_run_job(&v(&["linux", "arm64"]), &sets, true, false));
    }

    #[test]
    fn exact_with_no_label_sets_matches_only_empty_jobs() {
        assert!(can_run_job(&[], &[], true, false));
        assert!(!can_run_job(&v(&["linux"]), &[], true, false));
    }

    #[test]
    fn ghr_labels_are_split_and_sanitised() {
        let labels = v(&["self-hosted", "ghr-ec2-instance-type:c5.large", "ghr-bad label", "Linux"]);
        let split = split_labels(&labels);
        assert_eq!(split.regular, v(&["self-hosted", "Linux"]));
        assert_eq!(split.ghr, v(&["ghr-ec2-instance-type:c5.large"]));
        let long = format!("ghr-{}", "a".repeat(200));
        assert!(split_labels(&[long]).ghr.is_empty());
    }
}
