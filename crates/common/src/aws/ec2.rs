//! EC2 adapter for runner instances: list by the upstream tag filters, launch with EC2 Fleet
//! (`instant`) or RunInstances (dedicated hosts), tag, terminate.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::{
    BlockDeviceMapping, DefaultTargetCapacityType, EbsBlockDevice, Filter, FleetBlockDeviceMappingRequest,
    FleetEbsBlockDeviceRequest, FleetLaunchTemplateConfigRequest, FleetLaunchTemplateOverridesRequest,
    FleetLaunchTemplateSpecificationRequest, FleetOnDemandAllocationStrategy, FleetType, InstanceRequirementsRequest,
    InstanceType, LaunchTemplateSpecification, MemoryMiBRequest, OnDemandOptionsRequest, Placement, ResourceType,
    SpotAllocationStrategy, SpotOptionsRequest, Tag, TagSpecification, TargetCapacitySpecificationRequest, Tenancy,
    VCpuCountRangeRequest, VolumeType,
};

use super::{SdkConfig, aws_error};
use crate::domain::dynamic_labels::Ec2Overrides;
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
        let dynamic = request.overrides.as_ref();
        // A job's subnet or instance type replaces the configured lists; instance requirements
        // replace instance types altogether (EC2 takes one or the other per override).
        let subnets = match dynamic.and_then(|o| o.subnet_id.clone()) {
            Some(subnet) => vec![subnet],
            None => request.subnets.clone(),
        };
        let requirements = dynamic.filter(|o| o.uses_requirements()).map(instance_requirements);
        let instance_types: Vec<Option<String>> = match (dynamic.and_then(|o| o.instance_type.clone()), &requirements) {
            (_, Some(_)) => vec![None],
            (Some(instance_type), None) => vec![Some(instance_type)],
            (None, None) => request.instance_types.iter().cloned().map(Some).collect(),
        };
        let image_id = dynamic.and_then(|o| o.image_id.clone()).or_else(|| request.image_id.clone());
        let mut overrides = Vec::new();
        for subnet in &subnets {
            for instance_type in &instance_types {
                overrides.push(
                    FleetLaunchTemplateOverridesRequest::builder()
                        .subnet_id(subnet)
                        .set_instance_type(instance_type.as_deref().map(InstanceType::from))
                        .set_image_id(image_id.clone())
                        .set_priority(instance_type.as_deref().filter(|_| prioritized).map(|t| request.priority_of(t)))
                        .set_instance_requirements(requirements.clone())
                        .set_max_price(dynamic.and_then(|o| o.max_price.clone()))
                        .set_availability_zone(dynamic.and_then(|o| o.availability_zone.clone()))
                        .set_placement(dynamic.and_then(placement))
                        .set_block_device_mappings(dynamic.and_then(fleet_block_device).map(|b| vec![b]))
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
        let dynamic = request.overrides.as_ref();
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
            .set_instance_type(
                dynamic
                    .and_then(|o| o.instance_type.as_deref())
                    .or(request.instance_types.first().map(String::as_str))
                    .map(InstanceType::from),
            )
            .set_subnet_id(dynamic.and_then(|o| o.subnet_id.clone()).or_else(|| request.subnets.first().cloned()))
            .set_image_id(dynamic.and_then(|o| o.image_id.clone()).or_else(|| request.image_id.clone()))
            .set_placement(dynamic.and_then(placement))
            .set_block_device_mappings(dynamic.and_then(block_device).map(|b| vec![b]))
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

/// `ghr-ec2-vcpu-count-*`, `memory-mib-*`, `allowed/excluded-instance-types` as attribute-based
/// instance selection; EC2 requires both ranges, so a missing minimum is 0.
fn instance_requirements(o: &Ec2Overrides) -> InstanceRequirementsRequest {
    let positive = |v: Option<u32>| v.map(|v| v.min(i32::MAX as u32) as i32);
    InstanceRequirementsRequest::builder()
        .v_cpu_count(
            VCpuCountRangeRequest::builder()
                .min(positive(o.vcpu_min).unwrap_or(0))
                .set_max(positive(o.vcpu_max))
                .build(),
        )
        .memory_mib(
            MemoryMiBRequest::builder()
                .min(positive(o.memory_mib_min).unwrap_or(0))
                .set_max(positive(o.memory_mib_max))
                .build(),
        )
        .set_allowed_instance_types((!o.allowed_instance_types.is_empty()).then(|| o.allowed_instance_types.clone()))
        .set_excluded_instance_types((!o.excluded_instance_types.is_empty()).then(|| o.excluded_instance_types.clone()))
        .build()
}

fn placement(o: &Ec2Overrides) -> Option<Placement> {
    if o.placement_group_name.is_none() && o.placement_tenancy.is_none() {
        return None;
    }
    Some(
        Placement::builder()
            .set_group_name(o.placement_group_name.clone())
            .set_tenancy(o.placement_tenancy.as_deref().map(Tenancy::from))
            .build(),
    )
}

/// A job's EBS settings for one device.
struct Volume {
    device: String,
    size: Option<i32>,
    kind: Option<VolumeType>,
    iops: Option<i32>,
    throughput: Option<i32>,
}

fn volume(o: &Ec2Overrides) -> Option<Volume> {
    let device = o.block_device_name.clone().filter(|_| o.uses_ebs())?;
    let int = |v: Option<u32>| v.map(|v| v.min(i32::MAX as u32) as i32);
    Some(Volume {
        device,
        size: int(o.ebs_volume_size),
        kind: o.ebs_volume_type.as_deref().map(VolumeType::from),
        iops: int(o.ebs_iops),
        throughput: int(o.ebs_throughput),
    })
}

/// The job's EBS settings for the root device. An override replaces the template's mapping of
/// that device: it stays encrypted and deleted with the instance, as the runners' template has it.
fn fleet_block_device(o: &Ec2Overrides) -> Option<FleetBlockDeviceMappingRequest> {
    let v = volume(o)?;
    let ebs = FleetEbsBlockDeviceRequest::builder()
        .encrypted(true)
        .delete_on_termination(true)
        .set_volume_size(v.size)
        .set_volume_type(v.kind)
        .set_iops(v.iops)
        .set_throughput(v.throughput)
        .build();
    Some(FleetBlockDeviceMappingRequest::builder().device_name(v.device).ebs(ebs).build())
}

fn block_device(o: &Ec2Overrides) -> Option<BlockDeviceMapping> {
    let v = volume(o)?;
    let ebs = EbsBlockDevice::builder()
        .encrypted(true)
        .delete_on_termination(true)
        .set_volume_size(v.size)
        .set_volume_type(v.kind)
        .set_iops(v.iops)
        .set_throughput(v.throughput)
        .build();
    Some(BlockDeviceMapping::builder().device_name(v.device).ebs(ebs).build())
}

fn filter(name: &str, values: &[&str]) -> Filter {
    Filter::builder().name(name).set_values(Some(values.iter().map(|v| v.to_string()).collect())).build()
}

fn to_domain(instance: &aws_sdk_ec2::types::Instance) -> Option<RunnerInstance> {
    Some(RunnerInstance {
        image_id: instance.image_id().map(str::to_string),
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
        if f.warm_only {
            filters.push(filter("tag-key", &[crate::domain::warm_pool::WARM_TAG]));
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

    async fn template_block_device(&self, launch_template: &str) -> Result<Option<String>, AwsError> {
        let out = self
            .client
            .describe_launch_template_versions()
            .launch_template_name(launch_template)
            .versions("$Default")
            .send()
            .await
            .map_err(|e| aws_error("ec2:DescribeLaunchTemplateVersions", e))?;
        let mappings: Vec<_> = out
            .launch_template_versions()
            .iter()
            .filter_map(|v| v.launch_template_data())
            .flat_map(|d| d.block_device_mappings())
            .collect();
        // Upstream's choice: the first EBS mapping with a device name, else the first device name.
        let ebs = mappings.iter().find(|m| m.ebs().is_some() && m.device_name().is_some());
        Ok(ebs
            .or(mappings.iter().find(|m| m.device_name().is_some()))
            .and_then(|m| m.device_name())
            .map(str::to_string))
    }

    async fn template_image(&self, launch_template: &str) -> Result<Option<String>, AwsError> {
        let out = self
            .client
            .describe_launch_template_versions()
            .launch_template_name(launch_template)
            .versions("$Default")
            .resolve_alias(true)
            .send()
            .await
            .map_err(|e| aws_error("ec2:DescribeLaunchTemplateVersions", e))?;
        Ok(out
            .launch_template_versions()
            .iter()
            .find_map(|v| v.launch_template_data().and_then(|d| d.image_id()))
            .map(str::to_string))
    }

    async fn stop(&self, instance_ids: &[String]) -> Result<(), AwsError> {
        if instance_ids.is_empty() {
            return Ok(());
        }
        self.client
            .stop_instances()
            .set_instance_ids(Some(instance_ids.to_vec()))
            .send()
            .await
            .map_err(|e| aws_error("ec2:StopInstances", e))?;
        Ok(())
    }

    async fn start(&self, instance_ids: &[String]) -> Result<(), AwsError> {
        if instance_ids.is_empty() {
            return Ok(());
        }
        self.client
            .start_instances()
            .set_instance_ids(Some(instance_ids.to_vec()))
            .send()
            .await
            .map_err(|e| aws_error("ec2:StartInstances", e))?;
        Ok(())
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
