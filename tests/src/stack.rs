//! A runner configuration set up in moto the way Terraform sets it up in AWS, and the
//! environment Terraform gives each function. Used by the end-to-end tests, the benchmarks and
//! the local demo.

use aws_sdk_ec2::types::{
    LaunchTemplateHttpTokensState, LaunchTemplateInstanceMetadataEndpointState,
    LaunchTemplateInstanceMetadataOptionsRequest, LaunchTemplateInstanceMetadataTagsState,
    LaunchTemplateTagSpecificationRequest, RequestLaunchTemplateData, ResourceType, Tag,
};

use crate::apps::TestApp;
use crate::aws::Aws;

/// What Terraform creates for one runner configuration (`prefix` is Terraform's `prefix`).
#[derive(Clone)]
pub struct RunnerStack {
    pub prefix: String,
    /// `/github-action-runners/<prefix>`.
    pub ssm_root: String,
    pub launch_template: String,
    pub subnets: Vec<String>,
    pub queue_url: String,
    pub app_id_parameters: String,
    pub app_key_parameters: String,
    pub webhook_secret_parameter: String,
    pub webhook_secret: String,
}

impl RunnerStack {
    /// Creates the SSM parameters of `apps`, the webhook secret, the launch template and the
    /// build queue.
    pub async fn create(aws: &Aws, prefix: &str, apps: &[TestApp]) -> Self {
        let ssm_root = format!("/github-action-runners/{prefix}");
        let mut ids = Vec::new();
        let mut keys = Vec::new();
        for (i, app) in apps.iter().enumerate() {
            let (id_name, key_name) = if i == 0 {
                (format!("{ssm_root}/app/github_app_id"), format!("{ssm_root}/app/github_app_key_base64"))
            } else {
                (
                    format!("{ssm_root}/app/additional_github_app_{i}_id"),
                    format!("{ssm_root}/app/additional_github_app_{i}_key_base64"),
                )
            };
            aws.put_parameter(&id_name, &app.id.to_string(), true).await;
            aws.put_parameter(&key_name, &app.key_base64(), true).await;
            ids.push(id_name);
            keys.push(key_name);
        }
        let webhook_secret = format!("webhook-secret-{prefix}");
        let webhook_secret_parameter = format!("{ssm_root}/app/github_app_webhook_secret");
        aws.put_parameter(&webhook_secret_parameter, &webhook_secret, true).await;

        let image = aws
            .ec2
            .describe_images()
            .owners("amazon")
            .send()
            .await
            .ok()
            .and_then(|o| o.images().first().and_then(|i| i.image_id().map(str::to_string)))
            .expect("moto has AMIs");
        let subnets: Vec<String> = aws
            .ec2
            .describe_subnets()
            .send()
            .await
            .expect("describe subnets")
            .subnets()
            .iter()
            .filter_map(|s| s.subnet_id().map(str::to_string))
            .take(2)
            .collect();
        let launch_template = format!("{prefix}-action-runner");
        let instance_tags = [
            ("Name", launch_template.clone()),
            ("ghr:environment", prefix.to_string()),
            ("ghr:ssm_config_path", format!("{ssm_root}/runners/config")),
            ("ghr:runner_name_prefix", String::new()),
        ];
        aws.ec2
            .create_launch_template()
            .launch_template_name(&launch_template)
            .launch_template_data(
                RequestLaunchTemplateData::builder()
                    .image_id(&image)
                    .instance_type(aws_sdk_ec2::types::InstanceType::M5Large)
                    // As the runners module's default: where a job's `ghr-ec2-ebs-*` labels go.
                    .block_device_mappings(
                        aws_sdk_ec2::types::LaunchTemplateBlockDeviceMappingRequest::builder()
                            .device_name("/dev/xvda")
                            .ebs(
                                aws_sdk_ec2::types::LaunchTemplateEbsBlockDeviceRequest::builder()
                                    .volume_size(30)
                                    .volume_type(aws_sdk_ec2::types::VolumeType::Gp3)
                                    .encrypted(true)
                                    .build(),
                            )
                            .build(),
                    )
                    .metadata_options(
                        LaunchTemplateInstanceMetadataOptionsRequest::builder()
                            .http_tokens(LaunchTemplateHttpTokensState::Required)
                            .http_endpoint(LaunchTemplateInstanceMetadataEndpointState::Enabled)
                            .instance_metadata_tags(LaunchTemplateInstanceMetadataTagsState::Enabled)
                            .build(),
                    )
                    .tag_specifications(
                        LaunchTemplateTagSpecificationRequest::builder()
                            .resource_type(ResourceType::Instance)
                            .set_tags(Some(
                                instance_tags.iter().map(|(k, v)| Tag::builder().key(*k).value(v).build()).collect(),
                            ))
                            .build(),
                    )
                    .build(),
            )
            .send()
            .await
            .expect("create the launch template");
        let queue_url = aws.create_queue(&format!("{prefix}-queued-builds"), false).await;
        Self {
            prefix: prefix.to_string(),
            ssm_root,
            launch_template,
            subnets,
            queue_url,
            app_id_parameters: ids.join(":"),
            app_key_parameters: keys.join(":"),
            webhook_secret_parameter,
            webhook_secret,
        }
    }

    /// Launches `count` runner instances for `owner` the way scale-up does (launch template,
    /// runner tags), returning their ids.
    pub async fn launch_instances(
        &self,
        aws: &Aws,
        owner: &common::domain::runner::RunnerOwner,
        count: usize,
    ) -> Vec<String> {
        use common::domain::runner::tags;
        let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build();
        let out = aws
            .ec2
            .run_instances()
            .launch_template(
                aws_sdk_ec2::types::LaunchTemplateSpecification::builder()
                    .launch_template_name(&self.launch_template)
                    .version("$Default")
                    .build(),
            )
            .min_count(count as i32)
            .max_count(count as i32)
            .subnet_id(&self.subnets[0])
            .tag_specifications(
                aws_sdk_ec2::types::TagSpecification::builder()
                    .resource_type(ResourceType::Instance)
                    .tags(tag(tags::APPLICATION, tags::APPLICATION_VALUE))
                    .tags(tag(tags::CREATED_BY, tags::CREATED_BY_SCALE_UP))
                    .tags(tag(tags::TYPE, owner.runner_type().as_str()))
                    .tags(tag(tags::OWNER, &owner.tag_value()))
                    .build(),
            )
            .send()
            .await
            .expect("run instances");
        out.instances().iter().filter_map(|i| i.instance_id().map(str::to_string)).collect()
    }

    /// Scale-down's environment as Terraform sets it; `overrides` as for [`Self::scale_up_env`].
    pub fn scale_down_env(
        &self,
        github_api: &str,
        clock_file: &str,
        overrides: &[(&str, &str)],
    ) -> Vec<(String, String)> {
        let mut vars: Vec<(String, String)> = vec![
            ("ENVIRONMENT".into(), self.prefix.clone()),
            ("SCALE_DOWN_CONFIG".into(), "[]".into()),
            ("MINIMUM_RUNNING_TIME_IN_MINUTES".into(), "5".into()),
            ("RUNNER_BOOT_TIME_IN_MINUTES".into(), "5".into()),
            ("RUNNER_NAME_PREFIX".into(), String::new()),
            ("RUNNER_JOB_START_GRACE_SECONDS".into(), "2".into()),
            ("RUNNER_WITHDRAWAL_WAIT_SECONDS".into(), "2".into()),
            ("PARAMETER_GITHUB_APP_ID_NAME".into(), self.app_id_parameters.clone()),
            ("PARAMETER_GITHUB_APP_KEY_BASE64_NAME".into(), self.app_key_parameters.clone()),
            ("LOG_LEVEL".into(), "info".into()),
            ("POWERTOOLS_METRICS_NAMESPACE".into(), "GitHub Runners".into()),
            (common::config::test_overrides::GITHUB_API_URL.into(), github_api.into()),
            (common::config::test_overrides::CLOCK_FILE.into(), clock_file.into()),
        ];
        for (k, v) in overrides {
            vars.retain(|(name, _)| name != k);
            if !v.is_empty() {
                vars.push((k.to_string(), v.to_string()));
            }
        }
        vars
    }

    pub fn token_path(&self) -> String {
        format!("{}/runners/tokens", self.ssm_root)
    }

    pub fn config_path(&self) -> String {
        format!("{}/runners/config", self.ssm_root)
    }

    /// Scale-up's environment with Terraform's defaults for an ephemeral JIT configuration;
    /// `overrides` replace or add variables (an empty value removes one).
    pub fn scale_up_env(&self, github_api: &str, overrides: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut vars: Vec<(String, String)> = vec![
            ("ENVIRONMENT".into(), self.prefix.clone()),
            ("ENABLE_ORGANIZATION_RUNNERS".into(), "true".into()),
            ("RUNNERS_MAXIMUM_COUNT".into(), "-1".into()),
            ("RUNNER_LABELS".into(), "linux,self-hosted,x64".into()),
            ("RUNNER_GROUP_NAME".into(), "Default".into()),
            ("RUNNER_NAME_PREFIX".into(), String::new()),
            ("SSM_TOKEN_PATH".into(), self.token_path()),
            ("SSM_CONFIG_PATH".into(), self.config_path()),
            ("SSM_PARAMETER_STORE_TAGS".into(), format!(r#"[{{"Key":"ghr:environment","Value":"{}"}}]"#, self.prefix)),
            ("ENABLE_EPHEMERAL_RUNNERS".into(), "true".into()),
            ("ENABLE_JIT_CONFIG".into(), "true".into()),
            ("DISABLE_RUNNER_AUTOUPDATE".into(), "false".into()),
            ("ENABLE_JOB_QUEUED_CHECK".into(), "false".into()),
            ("PARAMETER_GITHUB_APP_ID_NAME".into(), self.app_id_parameters.clone()),
            ("PARAMETER_GITHUB_APP_KEY_BASE64_NAME".into(), self.app_key_parameters.clone()),
            ("LAUNCH_TEMPLATE_NAME".into(), self.launch_template.clone()),
            ("SUBNET_IDS".into(), self.subnets.join(",")),
            ("INSTANCE_TYPES".into(), "m5.large,c5.large".into()),
            ("INSTANCE_TARGET_CAPACITY_TYPE".into(), "spot".into()),
            ("INSTANCE_ALLOCATION_STRATEGY".into(), "lowest-price".into()),
            ("ENABLE_ON_DEMAND_FAILOVER_FOR_ERRORS".into(), "[]".into()),
            (
                "SCALE_ERRORS".into(),
                r#"["UnfulfillableCapacity","MaxSpotInstanceCountExceeded","TargetCapacityLimitExceededException","RequestLimitExceeded","ResourceLimitExceeded","MaxSpotFleetRequestCountExceeded","InsufficientInstanceCapacity","InsufficientCapacityOnHost"]"#.into(),
            ),
            ("LOG_LEVEL".into(), "info".into()),
            ("POWERTOOLS_METRICS_NAMESPACE".into(), "GitHub Runners".into()),
            (common::config::test_overrides::GITHUB_API_URL.into(), github_api.into()),
        ];
        for (k, v) in overrides {
            vars.retain(|(name, _)| name != k);
            if !v.is_empty() {
                vars.push((k.to_string(), v.to_string()));
            }
        }
        vars
    }
}
