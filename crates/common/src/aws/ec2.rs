//! EC2 adapter for runner instances: list by the upstream tag filters, launch with EC2 Fleet
//! (`instant`) or RunInstances (dedicated hosts), tag, terminate.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::{
    DefaultTargetCapacityType, Filter, FleetLaunchTemplateConfigRequest, FleetLaunchTemplateOverridesRequest,
    FleetLaunchTemplateSpecificationRequest, FleetOnDemandAllocationStrategy, FleetType, InstanceType,
    LaunchTemplateSpecification, OnDemandOptionsRequest, ResourceType, SpotAllocationStrategy, SpotOptionsRequest, Tag,
    TagSpecification, TargetCapacitySpecificationRequest,
};

use super::{SdkConfig, aws_error};
use crate::domain::runner::{InstanceFilter, RunnerInstance, tags};
use crate::domain::scale_up::{CapacityType, FleetError, LaunchOutcome, LaunchRequest, uses_priorities};
use crate::domain::termination::WatchedInstance;
use crate::error::AwsError;
use crate::ports::{RunnerInstances, WatchedInstances};

pub struct Ec2RunnerInstances {
    client: Client,
}

impl Ec2RunnerInstances {
    pub fn new(config: &SdkConfig) -> Self {
        Self { client: Client::new(config) }
    }

    /// A client whose calls are not retried by the SDK: the caller retries within its deadline.
    pub fn without_retries(config: &SdkConfig) -> Self {
        let conf =
            aws_sdk_ec2::config::Builder::from(config).retry_config(aws_config::retry::RetryConfig::disabled()).build();
        Self { client: Client::from_conf(conf) }
    }

    /// The instances with these ids, whatever their state, every page. By filter, not
    /// `InstanceIds`: an id EC2 does not know (any more) is absent instead of an error.
    async fn by_ids(&self, instance_ids: &[String]) -> Result<Vec<aws_sdk_ec2::types::Instance>, AwsError> {
        let mut out = Vec::new();
        for chunk in instance_ids.chunks(200) {
            let ids: Vec<&str> = chunk.iter().map(String::as_str).collect();
            let mut next: Option<String> = None;
            loop {
                let page = self
                    .client
                    .describe_instances()
                    .filters(filter("instance-id", &ids))
                    .set_next_token(next.take())
                    .send()
                    .await
                    .map_err(|e| aws_error("ec2:DescribeInstances", e))?;
                out.extend(page.reservations().iter().flat_map(|r| r.instances()).cloned());
                match page.next_token() {
                    Some(t) if !t.is_empty() => next = Some(t.to_string()),
                    _ => break,
                }
            }
        }
        Ok(out)
    }

    fn tag_specifications(request: &LaunchRequest) -> Vec<TagSpecification> {
        let tags: Vec<Tag> = request.tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect();
        [ResourceType::Instance, ResourceType::Volume]
            .into_iter()
            .map(|kind| TagSpecification::builder().resource_type(kind).set_tags(Some(tags.clone())).build())
            .collect()
    }

    async fn create_fleet(&self, request: &LaunchRequest) -> Result<LaunchOutcome, AwsError> {
        let prioritized = uses_priorities(&request.allocation_strategy);
        let mut overrides = Vec::new();
        for subnet in &request.subnets {
            for instance_type in &request.instance_types {
                overrides.push(
                    FleetLaunchTemplateOverridesRequest::builder()
                        .subnet_id(subnet)
                        .instance_type(InstanceType::from(instance_type.as_str()))
                        .set_image_id(request.image_id.clone())
                        .set_priority(prioritized.then(|| request.priority_of(instance_type)))
                        .build(),
                );
            }
        }
        let template = FleetLaunchTemplateConfigRequest::builder()
            .launch_template_specification(
                FleetLaunchTemplateSpecificationRequest::builder()
                    .launch_template_name(&request.launch_template)
                    .version("$Default")
                    .build(),
            )
            .set_overrides(Some(overrides))
            .build();
        let capacity = match request.capacity_type {
            CapacityType::Spot => DefaultTargetCapacityType::Spot,
            CapacityType::OnDemand => DefaultTargetCapacityType::OnDemand,
        };
        let mut call = self
            .client
            .create_fleet()
            .r#type(FleetType::Instant)
            .launch_template_configs(template)
            .target_capacity_specification(
                TargetCapacitySpecificationRequest::builder()
                    .total_target_capacity(request.count as i32)
                    .default_target_capacity_type(capacity)
                    .build(),
            )
            .set_tag_specifications(Some(Self::tag_specifications(request)))
            .set_client_token(request.client_token.clone());
        call = match request.capacity_type {
            CapacityType::Spot => call.spot_options(
                SpotOptionsRequest::builder()
                    .allocation_strategy(SpotAllocationStrategy::from(request.allocation_strategy.as_str()))
                    .set_max_total_price(request.max_spot_price.clone())
                    .build(),
            ),
            CapacityType::OnDemand => call.on_demand_options(
                OnDemandOptionsRequest::builder()
                    .allocation_strategy(FleetOnDemandAllocationStrategy::from(request.allocation_strategy.as_str()))
                    .build(),
            ),
        };
        let out = call.send().await.map_err(|e| aws_error("ec2:CreateFleet", e))?;
        Ok(LaunchOutcome {
            instance_ids: out.instances().iter().flat_map(|i| i.instance_ids().iter().cloned()).collect(),
            errors: out
                .errors()
                .iter()
                .map(|e| FleetError {
                    code: e.error_code().unwrap_or("Unknown").to_string(),
                    message: e.error_message().unwrap_or("").to_string(),
                })
                .collect(),
        })
    }

    async fn run_instances(&self, request: &LaunchRequest) -> Result<LaunchOutcome, AwsError> {
        let out = self
            .client
            .run_instances()
            .launch_template(
                LaunchTemplateSpecification::builder()
                    .launch_template_name(&request.launch_template)
                    .version("$Default")
                    .build(),
            )
            .min_count(request.count as i32)
            .max_count(request.count as i32)
            .set_instance_type(request.instance_types.first().map(|t| InstanceType::from(t.as_str())))
            .set_subnet_id(request.subnets.first().cloned())
            .set_image_id(request.image_id.clone())
            .set_tag_specifications(Some(Self::tag_specifications(request)))
            .set_client_token(request.client_token.clone())
            .send()
            .await
            .map_err(|e| aws_error("ec2:RunInstances", e))?;
        Ok(LaunchOutcome {
            instance_ids: out.instances().iter().filter_map(|i| i.instance_id().map(str::to_string)).collect(),
            errors: Vec::new(),
        })
    }
}

fn filter(name: &str, values: &[&str]) -> Filter {
    Filter::builder().name(name).set_values(Some(values.iter().map(|v| v.to_string()).collect())).build()
}

fn to_domain(instance: &aws_sdk_ec2::types::Instance) -> Option<RunnerInstance> {
    Some(RunnerInstance {
        id: instance.instance_id()?.to_string(),
        launch_time: instance.launch_time().and_then(|t| chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos())),
        state: instance.state().and_then(|s| s.name()).map(|n| n.as_str().to_string()).unwrap_or_default(),
        tags: instance
            .tags()
            .iter()
            .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or("").to_string())))
            .collect::<BTreeMap<_, _>>(),
    })
}

#[async_trait]
impl WatchedInstances for Ec2RunnerInstances {
    async fn describe(&self, instance_ids: &[String]) -> Result<Vec<WatchedInstance>, AwsError> {
        Ok(self
            .by_ids(instance_ids)
            .await?
            .iter()
            .filter_map(|instance| {
                let instance_type = instance.instance_type().map(|t| t.as_str().to_string());
                to_domain(instance).map(|runner| WatchedInstance { instance: runner, instance_type })
            })
            .collect())
    }
}

/// Instances per `DescribeInstances` page. Smaller than the API's 1,000: a page's latency grows
/// with its size (a full page of tagged instances can pass the 5 s attempt timeout), and five
/// calls for 1,000 instances cost nothing next to one that times out and is retried.
const LIST_PAGE_SIZE: i32 = 200;
/// Instance ids per `TerminateInstances`/`CreateTags`/`DeleteTags` call (bounded requests).
const RESOURCE_CHUNK: usize = 500;

#[async_trait]
impl RunnerInstances for Ec2RunnerInstances {
    async fn list(&self, f: &InstanceFilter) -> Result<Vec<RunnerInstance>, AwsError> {
        let states: Vec<&str> = f.states.iter().map(String::as_str).collect();
        let mut filters = vec![
            filter("instance-state-name", &states),
            filter(&format!("tag:{}", tags::ENVIRONMENT), &[&f.environment]),
            filter(&format!("tag:{}", tags::APPLICATION), &[tags::APPLICATION_VALUE]),
        ];
        if let Some(owner) = &f.owner {
            filters.push(filter(&format!("tag:{}", tags::TYPE), &[owner.runner_type().as_str()]));
            filters.push(filter(&format!("tag:{}", tags::OWNER), &[&owner.tag_value()]));
        }
        if f.orphan_only {
            filters.push(filter(&format!("tag:{}", tags::ORPHAN), &["true"]));
        }
        let mut out = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let page = self
                .client
                .describe_instances()
                .set_filters(Some(filters.clone()))
                .max_results(LIST_PAGE_SIZE)
                .set_next_token(next.take())
                .send()
                .await
                .map_err(|e| aws_error("ec2:DescribeInstances", e))?;
            for reservation in page.reservations() {
                out.extend(reservation.instances().iter().filter_map(to_domain));
            }
            match page.next_token() {
                Some(t) if !t.is_empty() => next = Some(t.to_string()),
                _ => return Ok(out),
            }
        }
    }

    async fn launch(&self, request: &LaunchRequest) -> Result<LaunchOutcome, AwsError> {
        if request.dedicated_host { self.run_instances(request).await } else { self.create_fleet(request).await }
    }

    async fn tag(&self, instance_ids: &[String], tags: &[(String, String)]) -> Result<(), AwsError> {
        for chunk in instance_ids.chunks(RESOURCE_CHUNK) {
            self.client
                .create_tags()
                .set_resources(Some(chunk.to_vec()))
                .set_tags(Some(tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect()))
                .send()
                .await
                .map_err(|e| aws_error("ec2:CreateTags", e))?;
        }
        Ok(())
    }

    async fn untag(&self, instance_ids: &[String], keys: &[String]) -> Result<(), AwsError> {
        for chunk in instance_ids.chunks(RESOURCE_CHUNK) {
            self.client
                .delete_tags()
                .set_resources(Some(chunk.to_vec()))
                .set_tags(Some(keys.iter().map(|k| Tag::builder().key(k).build()).collect()))
                .send()
                .await
                .map_err(|e| aws_error("ec2:DeleteTags", e))?;
        }
        Ok(())
    }

    async fn find(&self, instance_ids: &[String]) -> Result<Vec<RunnerInstance>, AwsError> {
        Ok(self.by_ids(instance_ids).await?.iter().filter_map(to_domain).collect())
    }

    async fn terminate(&self, instance_ids: &[String]) -> Result<(), AwsError> {
        if instance_ids.is_empty() {
            return Ok(());
        }
        for chunk in instance_ids.chunks(RESOURCE_CHUNK) {
            self.client
                .terminate_instances()
                .set_instance_ids(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| aws_error("ec2:TerminateInstances", e))?;
        }
        Ok(())
    }
}
