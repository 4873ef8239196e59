//! Scale-up rules: capacity, allocation strategies, fleet errors, the maximum, runner
//! configuration values. Pure functions; `scale-up` does the I/O around them.

use std::collections::BTreeMap;

use super::runner::{RunnerInstance, RunnerOwner};

/// Spot or on-demand capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapacityType {
    Spot,
    OnDemand,
}

impl CapacityType {
    pub fn as_str(self) -> &'static str {
        match self {
            CapacityType::Spot => "spot",
            CapacityType::OnDemand => "on-demand",
        }
    }
}

impl std::str::FromStr for CapacityType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "spot" => Ok(Self::Spot),
            "on-demand" => Ok(Self::OnDemand),
            other => Err(format!("`{other}` is not spot or on-demand")),
        }
    }
}

const SPOT_STRATEGIES: &[&str] = &[
    "lowest-price",
    "diversified",
    "capacity-optimized",
    "capacity-optimized-prioritized",
    "price-capacity-optimized",
];
const ON_DEMAND_STRATEGIES: &[&str] = &["lowest-price", "prioritized"];

/// An allocation strategy valid for the capacity type; anything else becomes `lowest-price`
/// (upstream).
pub fn sanitize_allocation_strategy(strategy: &str, capacity: CapacityType) -> &'static str {
    let valid = match capacity {
        CapacityType::Spot => SPOT_STRATEGIES,
        CapacityType::OnDemand => ON_DEMAND_STRATEGIES,
    };
    valid.iter().find(|s| **s == strategy.trim()).copied().unwrap_or("lowest-price")
}

/// Whether overrides carry a `Priority` under this strategy.
pub fn uses_priorities(strategy: &str) -> bool {
    matches!(strategy, "prioritized" | "capacity-optimized-prioritized")
}

/// What to ask EC2 for.
#[derive(Debug, Clone, PartialEq)]
pub struct LaunchRequest {
    pub count: usize,
    pub capacity_type: CapacityType,
    pub launch_template: String,
    pub subnets: Vec<String>,
    pub instance_types: Vec<String>,
    /// Already sanitised for `capacity_type`.
    pub allocation_strategy: String,
    /// Instance type → override priority (prioritised strategies only).
    pub priorities: BTreeMap<String, f64>,
    /// `SpotOptions.MaxTotalPrice`.
    pub max_spot_price: Option<String>,
    pub image_id: Option<String>,
    pub tags: Vec<(String, String)>,
    /// RunInstances on dedicated hosts instead of CreateFleet.
    pub dedicated_host: bool,
    /// EC2's idempotency token: a retry of the same request with the same token launches
    /// nothing new and answers what the first call launched (see [`launch_client_token`]).
    pub client_token: Option<String>,
    /// The job's `ghr-ec2-*` settings (dynamic labels), applied on top of the configuration's;
    /// `block_device_name` is filled when `ebs_*` settings are present.
    pub overrides: Option<super::dynamic_labels::Ec2Overrides>,
}

impl LaunchRequest {
    /// The override priority of an instance type: the configured one, else its position.
    pub fn priority_of(&self, instance_type: &str) -> f64 {
        self.priorities
            .get(instance_type)
            .copied()
            .unwrap_or_else(|| self.instance_types.iter().position(|t| t == instance_type).unwrap_or(0) as f64)
    }
}

/// The `ClientToken` of one launch: derived from the deliveries it launches for (each named by
/// the invocation, its message id, receive count and job id, so that only a retry within the
/// same invocation repeats it), the owner and the capacity type (the on-demand failover is a
/// request of its own).
/// At most 64 ASCII characters, as EC2 requires.
pub fn launch_client_token(deliveries: &[String], owner: &RunnerOwner, capacity: CapacityType) -> String {
    use sha2::{Digest, Sha256};
    let mut sorted: Vec<&String> = deliveries.iter().collect();
    sorted.sort();
    let mut hash = Sha256::new();
    hash.update(owner.tag_value().as_bytes());
    hash.update([0]);
    hash.update(capacity.as_str().as_bytes());
    for delivery in sorted {
        hash.update([0]);
        hash.update(delivery.as_bytes());
    }
    let digest = hash.finalize();
    let hex: String = digest.iter().take(24).map(|b| format!("{b:02x}")).collect();
    format!("ghr-{hex}")
}

/// One error EC2 Fleet reported (per override, not per instance).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetError {
    pub code: String,
    pub message: String,
}

/// What EC2 launched.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LaunchOutcome {
    pub instance_ids: Vec<String>,
    pub errors: Vec<FleetError>,
}

/// EC2 error codes that are always worth retrying (upstream's built-in list).
pub const BUILT_IN_RETRYABLE_EC2_CODES: &[&str] = &[
    "EC2ThrottledException",
    "InternalError",
    "RequestLimitExceeded",
    "RequestTimeout",
    "RequestTimeoutException",
    "ServiceUnavailable",
    "Throttling",
    "ThrottlingException",
];

/// Whether an EC2 error code is retryable: built in, or in `SCALE_ERRORS`.
pub fn is_retryable_ec2_code(code: &str, scale_errors: &[String]) -> bool {
    BUILT_IN_RETRYABLE_EC2_CODES.contains(&code) || scale_errors.iter().any(|c| c == code)
}

/// Upstream rule: fleet errors describe overrides, not instances, so one retryable error makes
/// every missing instance retryable.
pub fn fleet_errors_retryable(errors: &[FleetError], scale_errors: &[String]) -> bool {
    errors.iter().any(|e| is_retryable_ec2_code(&e.code, scale_errors))
}

/// Whether to ask again on-demand for what spot could not provide.
pub fn should_fail_over(capacity: CapacityType, errors: &[FleetError], failover_codes: &[String]) -> bool {
    capacity == CapacityType::Spot && errors.iter().any(|e| failover_codes.iter().any(|c| c == &e.code))
}

/// How many runners to create for `queued` jobs with `current` runners and `maximum`
/// (`-1` unlimited).
pub fn runners_to_create(queued: usize, current: usize, maximum: i64) -> usize {
    if maximum < 0 {
        return queued;
    }
    queued.min((maximum as usize).saturating_sub(current))
}

/// The instances of `mine` (just launched by this invocation) to terminate so that the owner
/// ends at or below `maximum`.
///
/// Instances of others rank ahead of ours, whether they existed before or another invocation
/// launched them concurrently, **except** those launched in a later second than every one of
/// ours: their invocation launched after ours, so its own recount (which waits until its
/// instances are listed, and so lists ours, launched earlier) ranks ours ahead and yields. Ours
/// are kept oldest first while there is room. Whichever invocation recounts last sees every
/// instance the others kept, so together they never end above the maximum (they may end below
/// it; the jobs they give back return through SQS). Instances of ours not listed yet (eventual
/// consistency) count as ours, and then no other instance is taken to be later than ours.
pub fn beyond_maximum(all: &[RunnerInstance], mine: &[String], maximum: i64) -> Vec<String> {
    if maximum < 0 {
        return Vec::new();
    }
    let mut ours: Vec<(&String, Option<chrono::DateTime<chrono::Utc>>)> =
        mine.iter().map(|id| (id, all.iter().find(|i| &i.id == id).and_then(|i| i.launch_time))).collect();
    // The latest of our launch times, when every one of ours is listed with one.
    let our_latest = ours.iter().map(|(_, t)| *t).collect::<Option<Vec<_>>>().and_then(|t| t.into_iter().max());
    let ahead_of_ours = |i: &RunnerInstance| match (our_latest, i.launch_time) {
        (Some(latest), Some(theirs)) => theirs.timestamp() <= latest.timestamp(),
        _ => true,
    };
    let others = all.iter().filter(|i| !mine.contains(&i.id) && ahead_of_ours(i)).count();
    let room = (maximum as usize).saturating_sub(others);
    ours.sort_by(|a, b| match (a.1, b.1) {
        (Some(x), Some(y)) => x.cmp(&y).then_with(|| a.0.cmp(b.0)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.0.cmp(b.0),
    });
    ours.into_iter().skip(room).map(|(id, _)| id.clone()).collect()
}

/// `ghr:runner_labels` tags: the comma-joined labels in chunks of 256 characters, at most five
/// tags (`ghr:runner_labels`, `ghr:runner_labels:2` ... `:5`), as upstream.
pub fn runner_label_tags(labels: &[String]) -> Vec<(String, String)> {
    let joined = labels.join(",");
    let chars: Vec<char> = joined.chars().collect();
    chars
        .chunks(256)
        .take(5)
        .enumerate()
        .map(|(i, chunk)| {
            let key = if i == 0 {
                super::runner::tags::RUNNER_LABELS.to_string()
            } else {
                format!("{}:{}", super::runner::tags::RUNNER_LABELS, i + 1)
            };
            (key, chunk.iter().collect())
        })
        .collect()
}

/// Quotes one argument for a POSIX shell, only when it needs it.
pub fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/' | ':' | ',' | '=' | '@' | '+'));
    if plain { arg.to_string() } else { format!("'{}'", arg.replace('\'', r"'\''")) }
}

/// The `config.sh` arguments stored for an instance in the registration-token flow (upstream
/// format: `--url <url> --token <t> --labels <labels> [--disableupdate] [--runnergroup <g>]
/// [--ephemeral]`). Every argument is shell-quoted when needed, so the boot script's
/// `eval set --` passes labels with spaces or quotes to `config.sh` intact (decisions.md #16).
pub struct RegistrationArgs<'a> {
    pub web_url: &'a str,
    pub owner: &'a RunnerOwner,
    pub token: &'a str,
    pub labels: &'a [String],
    pub disable_update: bool,
    pub runner_group: &'a str,
    pub ephemeral: bool,
}

impl RegistrationArgs<'_> {
    pub fn render(&self) -> String {
        let mut args: Vec<String> = vec![
            "--url".into(),
            shell_quote(&format!("{}/{}", self.web_url, self.owner)),
            "--token".into(),
            shell_quote(self.token),
            "--labels".into(),
            shell_quote(&self.labels.join(",")),
        ];
        if self.disable_update {
            args.push("--disableupdate".into());
        }
        if matches!(self.owner, RunnerOwner::Org(_)) {
            args.push("--runnergroup".into());
            args.push(shell_quote(self.runner_group));
        }
        if self.ephemeral {
            args.push("--ephemeral".into());
        }
        args.join(" ")
    }
}

/// SSM parameters of this many bytes or more need the Advanced tier (decisions.md #6).
pub const ADVANCED_TIER_BYTES: usize = 4000;

pub fn needs_advanced_tier(value: &str) -> bool {
    value.len() >= ADVANCED_TIER_BYTES
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocation_strategies_are_sanitised_per_capacity() {
        let cases = [
            ("price-capacity-optimized", CapacityType::Spot, "price-capacity-optimized"),
            ("capacity-optimized-prioritized", CapacityType::Spot, "capacity-optimized-prioritized"),
            ("prioritized", CapacityType::Spot, "lowest-price"),
            ("prioritized", CapacityType::OnDemand, "prioritized"),
            ("capacity-optimized", CapacityType::OnDemand, "lowest-price"),
            ("nonsense", CapacityType::Spot, "lowest-price"),
        ];
        for (input, capacity, expected) in cases {
            assert_eq!(sanitize_allocation_strategy(input, capacity), expected, "{input} {capacity:?}");
        }
        assert!(uses_priorities("prioritized") && uses_priorities("capacity-optimized-prioritized"));
        assert!(!uses_priorities("lowest-price"));
    }

    #[test]
    fn fleet_error_rules() {
        let e = |c: &str| FleetError { code: c.into(), message: String::new() };
        let scale = vec!["InsufficientInstanceCapacity".to_string()];
        assert!(fleet_errors_retryable(&[e("InsufficientInstanceCapacity")], &scale));
        assert!(fleet_errors_retryable(&[e("UnknownThing"), e("InternalError")], &[]), "one retryable is enough");
        assert!(!fleet_errors_retryable(&[e("InvalidLaunchTemplateName.NotFoundException")], &scale));
        assert!(!fleet_errors_retryable(&[], &scale));
        let failover = vec!["InsufficientInstanceCapacity".to_string()];
        assert!(should_fail_over(CapacityType::Spot, &[e("InsufficientInstanceCapacity")], &failover));
        assert!(!should_fail_over(CapacityType::OnDemand, &[e("InsufficientInstanceCapacity")], &failover));
        assert!(!should_fail_over(CapacityType::Spot, &[e("MaxSpotInstanceCountExceeded")], &failover));
        assert!(!should_fail_over(CapacityType::Spot, &[e("InsufficientInstanceCapacity")], &[]));
    }

    #[test]
    fn client_tokens_name_one_request() {
        let org = RunnerOwner::Org("acme".into());
        let m = |keys: &[&str]| keys.iter().map(|k| k.to_string()).collect::<Vec<_>>();
        let token = launch_client_token(&m(&["a/1/7", "b/1/8"]), &org, CapacityType::Spot);
        assert!(token.len() <= 64 && token.is_ascii(), "{token}");
        assert_eq!(token, launch_client_token(&m(&["b/1/8", "a/1/7"]), &org, CapacityType::Spot), "order-free");
        for other in [
            launch_client_token(&m(&["a/2/7", "b/1/8"]), &org, CapacityType::Spot),
            launch_client_token(&m(&["a/1/7"]), &org, CapacityType::Spot),
            launch_client_token(&m(&["a/1/7", "b/1/8"]), &org, CapacityType::OnDemand),
            launch_client_token(&m(&["a/1/7", "b/1/8"]), &RunnerOwner::Org("other".into()), CapacityType::Spot),
        ] {
            assert_ne!(token, other);
        }
    }

    #[test]
    fn maximum_arithmetic() {
        assert_eq!(runners_to_create(5, 0, -1), 5);
        assert_eq!(runners_to_create(5, 1, 3), 2);
        assert_eq!(runners_to_create(5, 4, 3), 0, "never negative when over the maximum");
        assert_eq!(runners_to_create(2, 0, 3), 2);
    }

    #[test]
    fn others_rank_ahead_of_ours() {
        let at = |s: i64| Some(chrono::DateTime::from_timestamp(s, 0).unwrap());
        let i = |id: &str, t| RunnerInstance {
            image_id: None,
            id: id.into(),
            launch_time: t,
            state: "running".into(),
            tags: Default::default(),
        };
        let all = vec![i("i-old", at(10)), i("i-b", at(20)), i("i-a", at(20)), i("i-new", at(30))];
        let mine = |ids: &[&str]| ids.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // Two others, maximum 3: one of ours fits, the oldest.
        assert_eq!(beyond_maximum(&all, &mine(&["i-new", "i-b"]), 3), vec!["i-new"]);
        // An instance launched in a later second than all of ours ranks behind ours: its
        // invocation yields to us. Ties in launch time break by id.
        assert_eq!(beyond_maximum(&all, &mine(&["i-b", "i-a"]), 3), Vec::<String>::new());
        assert_eq!(beyond_maximum(&all, &mine(&["i-b", "i-a"]), 2), vec!["i-b"]);
        // Others of the same second or earlier fill the maximum: all of ours go.
        let same_second = vec![i("i-x", at(20)), i("i-y", at(20)), i("i-z", at(20)), i("i-mine", at(20))];
        assert_eq!(beyond_maximum(&same_second, &mine(&["i-mine"]), 3), vec!["i-mine"]);
        // Ours is the oldest: the later ones yield, ours stays.
        assert_eq!(beyond_maximum(&all, &mine(&["i-old"]), 3), Vec::<String>::new());
        // Not listed yet: still ours, ranked last.
        assert_eq!(beyond_maximum(&all, &mine(&["i-unlisted", "i-new"]), 5), Vec::<String>::new());
        assert_eq!(beyond_maximum(&all, &mine(&["i-unlisted", "i-new"]), 4), vec!["i-unlisted"]);
        assert!(beyond_maximum(&all, &mine(&["i-new"]), -1).is_empty());
    }

    #[test]
    fn concurrent_recounts_never_exceed_the_maximum() {
        // Any interleaving: invocations launch, then recount seeing whatever was launched before
        // and not yet terminated. Whatever the order, the kept total stays within the maximum.
        let at = |s: i64| Some(chrono::DateTime::from_timestamp(s, 0).unwrap());
        for seed in 0..500u64 {
            let mut rng = fastrand::Rng::with_seed(seed);
            let maximum = rng.i64(1..8);
            let invocations = rng.usize(2..5);
            let mut alive: Vec<RunnerInstance> = (0..rng.usize(0..3))
                .map(|k| RunnerInstance {
                    image_id: None,
                    id: format!("i-pre{k}"),
                    launch_time: at(1),
                    state: "running".into(),
                    tags: Default::default(),
                })
                .collect();
            // Launch order and recount order are independent permutations, launch before recount.
            let mut launched: Vec<Vec<String>> = vec![Vec::new(); invocations];
            let mut events: Vec<(usize, bool)> = Vec::new();
            for inv in 0..invocations {
                events.push((inv, false));
            }
            rng.shuffle(&mut events);
            let mut pending_recounts: Vec<usize> = Vec::new();
            let mut order = Vec::new();
            for (inv, _) in events {
                order.push((inv, false));
                pending_recounts.push(inv);
                if rng.bool() {
                    let j = rng.usize(..pending_recounts.len());
                    order.push((pending_recounts.remove(j), true));
                }
            }
            rng.shuffle(&mut pending_recounts);
            order.extend(pending_recounts.into_iter().map(|inv| (inv, true)));
            let mut clock = 2;
            for (inv, recount) in order {
                if recount {
                    let surplus = beyond_maximum(&alive, &launched[inv], maximum);
                    alive.retain(|i| !surplus.contains(&i.id));
                } else {
                    // The clock moves on between launches, or not (same second).
                    clock += rng.i64(0..2);
                    for k in 0..rng.usize(1..6) {
                        let id = format!("i-{inv}-{k}-{:x}", rng.u32(..));
                        launched[inv].push(id.clone());
                        alive.push(RunnerInstance {
                            image_id: None,
                            id,
                            launch_time: at(clock),
                            state: "running".into(),
                            tags: Default::default(),
                        });
                    }
                }
            }
            let pre = alive.iter().filter(|i| i.id.starts_with("i-pre")).count() as i64;
            assert!(alive.len() as i64 <= maximum.max(pre), "seed {seed}: {} alive for maximum {maximum}", alive.len());
        }
    }

    #[test]
    fn label_tags_are_chunked() {
        let labels: Vec<String> = (0..200).map(|i| format!("label-{i:03}")).collect();
        let tags = runner_label_tags(&labels);
        assert_eq!(tags.len(), 5, "at most five tags");
        assert_eq!(tags[0].0, "ghr:runner_labels");
        assert_eq!(tags[1].0, "ghr:runner_labels:2");
        assert!(tags.iter().all(|(_, v)| v.chars().count() <= 256));
        assert_eq!(
            runner_label_tags(&["a".into(), "b".into()]),
            vec![("ghr:runner_labels".to_string(), "a,b".to_string())]
        );
    }

    #[test]
    fn config_sh_arguments_survive_a_shell() {
        let owner = RunnerOwner::Org("acme".into());
        let labels = vec!["self-hosted".to_string(), "my label".to_string(), "it's;fine".to_string()];
        let args = RegistrationArgs {
            web_url: "https://github.com",
            owner: &owner,
            token: "AABBCC",
            labels: &labels,
            disable_update: true,
            runner_group: "Default",
            ephemeral: true,
        }
        .render();
        assert_eq!(
            args,
            r"--url https://github.com/acme --token AABBCC --labels 'self-hosted,my label,it'\''s;fine' --disableupdate --runnergroup Default --ephemeral"
        );
        // A real shell turns it back into the exact arguments.
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg("eval \"set -- $1\"; printf '%s\\n' \"$@\"")
            .arg("sh")
            .arg(&args)
            .output()
            .expect("sh runs");
        let parsed: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect();
        assert_eq!(parsed.len(), 10, "{parsed:?}");
        assert_eq!(parsed[5], "self-hosted,my label,it's;fine");
        let repo = RunnerOwner::Repo { owner: "acme".into(), repo: "web".into() };
        let plain = RegistrationArgs {
            web_url: "https://ghes.example.com",
            owner: &repo,
            token: "T",
            labels: &["linux".to_string()],
            disable_update: false,
            runner_group: "Default",
            ephemeral: false,
        }
        .render();
        assert_eq!(
            plain, "--url https://ghes.example.com/acme/web --token T --labels linux",
            "no runner group for repositories"
        );
    }

    #[test]
    fn tiers() {
        assert!(!needs_advanced_tier(&"x".repeat(3999)));
        assert!(needs_advanced_tier(&"x".repeat(4000)));
    }
}
