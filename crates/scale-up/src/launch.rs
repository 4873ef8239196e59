//! Launching instances: the AMI override, one fleet per owner, on-demand failover, and EC2
//! retries bounded by the invocation's deadline.

use std::future::Future;

use common::deadline::Deadline;
use common::domain::dynamic_labels::{ec2_refuses_request, runner_labels};
use common::domain::runner::{RunnerOwner, tags};
use common::domain::scale_up::{
    CapacityType, FleetError, LaunchRequest, fleet_errors_retryable, launch_client_token, runner_label_tags,
    sanitize_allocation_strategy, should_fail_over,
};
use common::domain::warm_pool::{HIBERNATE_TAG, WARM_TAG, WarmState};
use common::error::AwsError;

use crate::{Config, DynamicLabels, ScaleUp};

/// What a launch produced.
pub(crate) struct Launched {
    pub instance_ids: Vec<String>,
    /// Why fewer instances than asked were launched.
    pub failure: Option<String>,
    /// The missing instances can never launch: EC2 refused the job's dynamic labels with an
    /// error that is not retryable (an instance type it does not offer, a size out of range).
    pub refused_dynamic_labels: bool,
}

impl Launched {
    fn failed(message: impl Into<String>) -> Self {
        Self { instance_ids: Vec::new(), failure: Some(message.into()), refused_dynamic_labels: false }
    }
}

/// EC2 calls are retried here, not in the SDK, so that no retry passes the deadline; the
/// `SCALE_ERRORS` codes count as retryable.
pub(crate) async fn with_retries<T, F, Fut>(config: &Config, deadline: Deadline, op: F) -> Result<T, AwsError>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, AwsError>>,
{
    common::aws::with_retries(deadline, &config.scale_errors, op).await
}

/// What instances are launched for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// Runners for jobs (scale-up).
    Jobs,
    /// Runners for the pool.
    Pool,
    /// Instances for the warm pool, in prepare mode: no owner until scale-up claims one.
    Warm { hibernate: bool },
}

fn launch_tags(config: &Config, owner: &RunnerOwner, dynamic: &[String], purpose: Purpose) -> Vec<(String, String)> {
    let created_by = match purpose {
        Purpose::Jobs => tags::CREATED_BY_SCALE_UP,
        Purpose::Pool => tags::CREATED_BY_POOL,
        Purpose::Warm { .. } => tags::CREATED_BY_WARM_POOL,
    };
    let mut t = vec![
        (tags::APPLICATION.to_string(), tags::APPLICATION_VALUE.to_string()),
        (tags::CREATED_BY.to_string(), created_by.to_string()),
    ];
    match purpose {
        Purpose::Warm { hibernate } => {
            t.push((WARM_TAG.to_string(), WarmState::Preparing.as_str().to_string()));
            t.push((HIBERNATE_TAG.to_string(), hibernate.to_string()));
        }
        Purpose::Jobs | Purpose::Pool => {
            t.push((tags::TYPE.to_string(), owner.runner_type().as_str().to_string()));
            t.push((tags::OWNER.to_string(), owner.tag_value()));
        }
    }
    t.extend(runner_label_tags(&runner_labels(&config.labels, dynamic)));
    t
}

/// Launches one instance per delivery for `owner`, with the jobs' dynamic labels. The
/// deliveries (see [`launch_client_token`]) name the request, so that a retried call cannot
/// launch twice.
pub(crate) async fn launch(
    scale_up: &ScaleUp,
    owner: &RunnerOwner,
    deliveries: &[String],
    dynamic: &DynamicLabels,
    on_demand: bool,
    purpose: Purpose,
    deadline: Deadline,
) -> Launched {
    let count = deliveries.len();
    let config = &scale_up.config;
    // Job rescue asks for on-demand capacity whatever the configuration's.
    let capacity = if on_demand { CapacityType::OnDemand } else { config.capacity_type };
    let mut overrides = dynamic.overrides.clone();
    if let Some(o) = overrides.as_mut().filter(|o| o.uses_ebs() && o.block_device_name.is_none()) {
        let read = common::aws::within(
            deadline,
            "ec2:DescribeLaunchTemplateVersions",
            scale_up.ec2.template_block_device(&config.launch_template),
        );
        match read.await {
            Ok(Some(device)) => o.block_device_name = Some(device),
            Ok(None) => {
                return Launched {
                    refused_dynamic_labels: true,
                    ..Launched::failed(
                        "ghr-ec2-ebs-* labels need ghr-ec2-block-device-name: the launch template maps no device",
                    )
                };
            }
            Err(e) => return Launched::failed(e.to_string()),
        }
    }
    if config.dedicated_host && capacity == CapacityType::Spot {
        return Launched::failed("spot capacity is not supported on dedicated hosts");
    }
    let image_id = match &config.ami_parameter {
        None => None,
        Some(name) => {
            match common::aws::within(deadline, "ssm:GetParameter", scale_up.parameters.get_parameter_fresh(name)).await
            {
                Ok(Some(v)) => Some(v.expose().trim().to_string()),
                Ok(None) => return Launched::failed(format!("the AMI parameter `{name}` does not exist")),
                Err(e) => return Launched::failed(e.to_string()),
            }
        }
    };
    let mut request = LaunchRequest {
        count,
        capacity_type: capacity,
        launch_template: config.launch_template.clone(),
        subnets: config.subnets.clone(),
        instance_types: config.instance_types.clone(),
        allocation_strategy: sanitize_allocation_strategy(&config.allocation_strategy, capacity).to_string(),
        priorities: config.instance_type_priorities.clone(),
        max_spot_price: config.max_spot_price.clone(),
        image_id,
        tags: launch_tags(config, owner, &dynamic.labels, purpose),
        dedicated_host: config.dedicated_host,
        client_token: Some(launch_client_token(deliveries, owner, capacity)),
        overrides,
    };
    let outcome = match with_retries(config, deadline, || scale_up.ec2.launch(&request)).await {
        Ok(o) => o,
        Err(e) => {
            let refused = request.overrides.is_some() && ec2_refuses_request(&[e.code.as_deref().unwrap_or("")]);
            return Launched { refused_dynamic_labels: refused, ..Launched::failed(e.to_string()) };
        }
    };
    let mut ids = outcome.instance_ids;
    let mut errors: Vec<FleetError> = outcome.errors;
    if ids.len() < count && should_fail_over(capacity, &errors, &config.failover_errors) {
        let missing = count - ids.len();
        tracing::info!(owner = %owner, missing, codes = ?errors.iter().map(|e| &e.code).collect::<Vec<_>>(), "spot capacity missing, failing over to on-demand");
        request.count = missing;
        request.capacity_type = CapacityType::OnDemand;
        request.client_token = Some(launch_client_token(deliveries, owner, CapacityType::OnDemand));
        request.allocation_strategy =
            sanitize_allocation_strategy(&config.allocation_strategy, CapacityType::OnDemand).to_string();
        match with_retries(config, deadline, || scale_up.ec2.launch(&request)).await {
            Ok(o) => {
                ids.extend(o.instance_ids);
                errors.extend(o.errors);
            }
            Err(e) => {
                errors.push(FleetError { code: e.code.clone().unwrap_or_else(|| "Error".into()), message: e.message })
            }
        }
    }
    ids.truncate(count);
    let failure = (ids.len() < count).then(|| {
        let codes: Vec<&str> = errors.iter().map(|e| e.code.as_str()).collect();
        format!(
            "EC2 launched {} of {count} instances ({}; {})",
            ids.len(),
            if codes.is_empty() { "no error reported".to_string() } else { codes.join(", ") },
            if fleet_errors_retryable(&errors, &config.scale_errors) { "retryable" } else { "not retryable" }
        )
    });
    if let Some(f) = &failure {
        tracing::warn!(owner = %owner, failure = %f, "instances missing");
    }
    let codes: Vec<&str> = errors.iter().map(|e| e.code.as_str()).collect();
    let refused_dynamic_labels = failure.is_some() && request.overrides.is_some() && ec2_refuses_request(&codes);
    Launched { instance_ids: ids, failure, refused_dynamic_labels }
}
