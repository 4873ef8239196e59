//! SSM Parameter Store adapter.
//!
//! Reads decrypt, go in batches of 10 names (GetParameters' limit) and are cached for the
//! container's life: configuration parameters change only with a deployment, which starts new
//! containers (Terraform also changes a version variable to force it). A failed read is not
//! cached, so the next invocation tries again.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use aws_sdk_ssm::Client;

use aws_sdk_ssm::types::{ParameterStringFilter, ParameterTier, ParameterType, Tag};

use super::{SdkConfig, aws_error};
use crate::config::Secret;
use crate::domain::scale_up::needs_advanced_tier;
use crate::error::{AwsError, AwsErrorKind};
use crate::ports::{
    ListedParameter, NewParameter, ParameterHousekeeping, ParameterLookup, ParameterStore, ParameterWriter,
};

/// GetParameters accepts at most this many names.
pub const GET_PARAMETERS_BATCH: usize = 10;
/// DeleteParameters accepts at most this many names.
pub const DELETE_PARAMETERS_BATCH: usize = 10;

pub struct SsmParameterStore {
    client: Client,
    cache: Mutex<BTreeMap<String, Secret<String>>>,
}

impl SsmParameterStore {
    pub fn new(config: &SdkConfig) -> Self {
        Self { client: Client::new(config), cache: Mutex::new(BTreeMap::new()) }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// One `GetParameters` call (at most [`GET_PARAMETERS_BATCH`] names), decrypted.
    async fn get_batch(
        &self,
        batch: &[String],
    ) -> Result<aws_sdk_ssm::operation::get_parameters::GetParametersOutput, AwsError> {
        self.client
            .get_parameters()
            .set_names(Some(batch.to_vec()))
            .with_decryption(true)
            .send()
            .await
            .map_err(|e| aws_error("ssm:GetParameters", e))
    }

    fn cached(&self, name: &str) -> Option<Secret<String>> {
        self.cache.lock().ok()?.get(name).cloned()
    }
}

#[async_trait]
impl ParameterStore for SsmParameterStore {
    async fn get_parameters(&self, names: &[String]) -> Result<BTreeMap<String, Secret<String>>, AwsError> {
        let mut found = BTreeMap::new();
        let mut to_fetch: Vec<String> = Vec::new();
        for name in names {
            match self.cached(name) {
                Some(v) => {
                    found.insert(name.clone(), v);
                }
                None if !to_fetch.contains(name) => to_fetch.push(name.clone()),
                None => {}
            }
        }
        let mut missing = Vec::new();
        for batch in to_fetch.chunks(GET_PARAMETERS_BATCH) {
            let out = self.get_batch(batch).await?;
            missing.extend(out.invalid_parameters().iter().cloned());
            for p in out.parameters() {
                if let (Some(name), Some(value)) = (p.name(), p.value()) {
                    found.insert(name.to_string(), Secret::new(value.to_string()));
                }
            }
        }
        if !missing.is_empty() {
            return Err(AwsError::new(
                "ssm:GetParameters",
                AwsErrorKind::NotFound,
                Some("ParameterNotFound".into()),
                format!("parameters not found: {}", missing.join(", ")),
            ));
        }
        if let Ok(mut cache) = self.cache.lock() {
            for name in &to_fetch {
                if let Some(v) = found.get(name) {
                    cache.insert(name.clone(), v.clone());
                }
            }
        }
        Ok(found)
    }

    async fn get_parameter_fresh(&self, name: &str) -> Result<Option<Secret<String>>, AwsError> {
        match self.client.get_parameter().name(name).with_decryption(true).send().await {
            Ok(out) => Ok(out.parameter().and_then(|p| p.value()).map(|v| Secret::new(v.to_string()))),
            Err(e) => {
                let err = aws_error("ssm:GetParameter", e);
                if err.kind == AwsErrorKind::NotFound { Ok(None) } else { Err(err) }
            }
        }
    }
}

#[async_trait]
impl ParameterWriter for SsmParameterStore {
    async fn put_parameter(&self, parameter: &NewParameter) -> Result<(), AwsError> {
        let value = parameter.value.expose();
        let tier = if needs_advanced_tier(value) { ParameterTier::Advanced } else { ParameterTier::Standard };
        let kind = if parameter.secure { ParameterType::SecureString } else { ParameterType::String };
        let tags: Vec<Tag> =
            parameter.tags.iter().filter_map(|(k, v)| Tag::builder().key(k).value(v).build().ok()).collect();
        // Tags cannot be sent with Overwrite.
        let tags = (!tags.is_empty() && !parameter.overwrite).then_some(tags);
        let written = self
            .client
            .put_parameter()
            .name(&parameter.name)
            .value(value)
            .r#type(kind)
            .tier(tier)
            .set_tags(tags)
            .set_overwrite(parameter.overwrite.then_some(true))
            .send()
            .await
            .map_err(|e| aws_error("ssm:PutParameter", e));
        match written {
            Ok(_) => Ok(()),
            // The SDK retried a write whose first attempt landed (its answer timed out): when the
            // parameter holds exactly our value, the write is done.
            Err(e) if e.code.as_deref() == Some("ParameterAlreadyExists") && !parameter.overwrite => {
                match self.get_parameter_fresh(&parameter.name).await {
                    Ok(Some(existing)) if existing.expose() == value => {
                        tracing::info!(parameter = %parameter.name, "an earlier attempt of this write landed");
                        Ok(())
                    }
                    _ => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }
}

#[async_trait]
impl ParameterHousekeeping for SsmParameterStore {
    async fn list_under(&self, path: &str) -> Result<Vec<ListedParameter>, AwsError> {
        let mut out = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let page = self
                .client
                .get_parameters_by_path()
                .path(path)
                .recursive(false)
                .with_decryption(false)
                .max_results(10)
                .set_next_token(next.take())
                .send()
                .await
                .map_err(|e| aws_error("ssm:GetParametersByPath", e))?;
            for p in page.parameters() {
                let Some(name) = p.name() else { continue };
                let last_modified =
                    p.last_modified_date().and_then(|d| chrono::DateTime::from_timestamp(d.secs(), d.subsec_nanos()));
                out.push(ListedParameter { name: name.to_string(), last_modified });
            }
            match page.next_token() {
                Some(t) if !t.is_empty() => next = Some(t.to_string()),
                _ => return Ok(out),
            }
        }
    }

    async fn delete(&self, names: &[String]) -> Result<Vec<String>, AwsError> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let out = self
            .client
            .delete_parameters()
            .set_names(Some(names.iter().take(DELETE_PARAMETERS_BATCH).cloned().collect()))
            .send()
            .await
            .map_err(|e| aws_error("ssm:DeleteParameters", e))?;
        Ok(out.invalid_parameters().to_vec())
    }
}

#[async_trait]
impl ParameterLookup for SsmParameterStore {
    async fn names_containing(&self, fragment: &str) -> Result<Vec<String>, AwsError> {
        let filter = ParameterStringFilter::builder()
            .key("Name")
            .option("Contains")
            .values(fragment)
            .build()
            .map_err(|e| AwsError::new("ssm:DescribeParameters", AwsErrorKind::Client, None, e.to_string()))?;
        let mut names = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let page = self
                .client
                .describe_parameters()
                .parameter_filters(filter.clone())
                .max_results(50)
                .set_next_token(next.take())
                .send()
                .await
                .map_err(|e| aws_error("ssm:DescribeParameters", e))?;
            names.extend(page.parameters().iter().filter_map(|p| p.name().map(str::to_string)));
            match page.next_token() {
                Some(t) if !t.is_empty() => next = Some(t.to_string()),
                _ => return Ok(names),
            }
        }
    }

    async fn current_values(&self, names: &[String]) -> Result<BTreeMap<String, Secret<String>>, AwsError> {
        let mut found = BTreeMap::new();
        let mut unique: Vec<String> = names.to_vec();
        unique.sort();
        unique.dedup();
        for batch in unique.chunks(GET_PARAMETERS_BATCH) {
            let out = self.get_batch(batch).await?;
            // Parameters come back under their plain name, with the selector (`:3`) asked for
            // if any: an ARN or a `name:selector` asked for is matched back to its own answer.
            for p in out.parameters() {
                let (Some(name), Some(value)) = (p.name(), p.value()) else { continue };
                let selector = p.selector().unwrap_or("");
                let by_name = format!("{name}{selector}");
                let by_arn = p.arn().map(|arn| format!("{arn}{selector}"));
                for asked in batch.iter().filter(|n| **n == by_name || by_arn.as_deref() == Some(n.as_str())) {
                    found.insert(asked.clone(), Secret::new(value.to_string()));
                }
            }
        }
        Ok(found)
    }
}
