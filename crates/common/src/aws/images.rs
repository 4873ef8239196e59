//! EC2 adapter for the AMI housekeeper: the account's images, the launch templates that name
//! them, deregistration and snapshot deletion.

use async_trait::async_trait;
use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::Filter;

use super::{SdkConfig, aws_error};
use crate::domain::ami_housekeeper::{ImageFilter, MachineImage};
use crate::error::{AwsError, AwsErrorKind};
use crate::ports::MachineImages;

/// Images per `DescribeImages` page (the API allows 5 to 1,000).
const IMAGE_PAGE_SIZE: usize = 200;
/// Versions read per template: the default and the latest (the next default after an apply).
const TEMPLATE_VERSIONS: [&str; 2] = ["$Default", "$Latest"];

pub struct Ec2MachineImages {
    client: Client,
}

impl Ec2MachineImages {
    /// A client whose calls are not retried by the SDK: the caller retries within its deadline.
    pub fn without_retries(config: &SdkConfig) -> Self {
        let conf =
            aws_sdk_ec2::config::Builder::from(config).retry_config(aws_config::retry::RetryConfig::disabled()).build();
        Self { client: Client::from_conf(conf) }
    }
}

fn to_domain(image: &aws_sdk_ec2::types::Image) -> Option<MachineImage> {
    Some(MachineImage {
        id: image.image_id()?.to_string(),
        name: image.name().map(str::to_string),
        created: image
            .creation_date()
            .and_then(|d| chrono::DateTime::parse_from_rfc3339(d).ok())
            .map(|d| d.with_timezone(&chrono::Utc)),
        snapshot_ids: image
            .block_device_mappings()
            .iter()
            .filter_map(|m| m.ebs().and_then(|e| e.snapshot_id()).map(str::to_string))
            .collect(),
    })
}

#[async_trait]
impl MachineImages for Ec2MachineImages {
    async fn list_own(&self, filters: &[ImageFilter], max_items: Option<usize>) -> Result<Vec<MachineImage>, AwsError> {
        let filters: Vec<Filter> = filters
            .iter()
            .map(|f| Filter::builder().name(&f.name).set_values(Some(f.values.clone())).build())
            .collect();
        let mut images = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let wanted =
                max_items.map_or(IMAGE_PAGE_SIZE, |m| m.saturating_sub(images.len()).clamp(5, IMAGE_PAGE_SIZE));
            let page = self
                .client
                .describe_images()
                .owners("self")
                .set_filters(Some(filters.clone()))
                .max_results(wanted as i32)
                .set_next_token(next.take())
                .send()
                .await
                .map_err(|e| aws_error("ec2:DescribeImages", e))?;
            images.extend(page.images().iter().filter_map(to_domain));
            if max_items.is_some_and(|m| images.len() >= m) {
                images.truncate(max_items.unwrap_or(usize::MAX));
                return Ok(images);
            }
            match page.next_token() {
                Some(t) if !t.is_empty() => next = Some(t.to_string()),
                _ => return Ok(images),
            }
        }
    }

    async fn launch_template_images(&self, names: Option<&[String]>) -> Result<Vec<String>, AwsError> {
        // By filter, not LaunchTemplateNames: a named template that does not exist is absent
        // instead of failing the whole lookup.
        let mut template_ids = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let mut request = self.client.describe_launch_templates().set_next_token(next.take());
            if let Some(names) = names {
                if names.is_empty() {
                    return Ok(Vec::new());
                }
                request = request
                    .filters(Filter::builder().name("launch-template-name").set_values(Some(names.to_vec())).build());
            }
            let page = request.send().await.map_err(|e| aws_error("ec2:DescribeLaunchTemplates", e))?;
            template_ids
                .extend(page.launch_templates().iter().filter_map(|t| t.launch_template_id().map(str::to_string)));
            match page.next_token() {
                Some(t) if !t.is_empty() => next = Some(t.to_string()),
                _ => break,
            }
        }
        let mut images = Vec::new();
        for id in template_ids {
            let answer = self
                .client
                .describe_launch_template_versions()
                .launch_template_id(&id)
                .set_versions(Some(TEMPLATE_VERSIONS.iter().map(|v| v.to_string()).collect()))
                // AWS answers `resolve:ssm:` references with the parameter's image; where it
                // does not, the housekeeper resolves them itself.
                .resolve_alias(true)
                .send()
                .await
                .map_err(|e| aws_error("ec2:DescribeLaunchTemplateVersions", e));
            let out = match answer {
                Ok(out) => out,
                // Deleted since it was listed: it launches nothing any more.
                Err(e) if e.kind == AwsErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            images.extend(
                out.launch_template_versions()
                    .iter()
                    .filter_map(|v| v.launch_template_data().and_then(|d| d.image_id()).map(str::to_string)),
            );
        }
        images.sort();
        images.dedup();
        Ok(images)
    }

    async fn deregister(&self, image_id: &str) -> Result<(), AwsError> {
        self.client
            .deregister_image()
            .image_id(image_id)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| aws_error("ec2:DeregisterImage", e))
    }

    async fn delete_snapshot(&self, snapshot_id: &str) -> Result<(), AwsError> {
        self.client
            .delete_snapshot()
            .snapshot_id(snapshot_id)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| aws_error("ec2:DeleteSnapshot", e))
    }
}
