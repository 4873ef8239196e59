//! SQS adapter, send side.
//!
//! The region of each queue is read from its URL (`https://sqs.<region>.amazonaws.com/...`), so a
//! webhook can feed queues in several regions; one client per region, kept for the container's
//! life. URLs without a region (moto, custom endpoints) use the default region.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::config::Region;

use super::{SdkConfig, aws_error};
use crate::error::AwsError;
use crate::ports::{DelayedQueue, JobQueue};

pub struct SqsJobQueue {
    base: SdkConfig,
    default_client: Client,
    regional: Mutex<HashMap<String, Client>>,
}

impl SqsJobQueue {
    pub fn new(config: &SdkConfig) -> Self {
        Self { base: config.clone(), default_client: Client::new(config), regional: Mutex::new(HashMap::new()) }
    }

    fn client_for(&self, queue_url: &str) -> Client {
        let Some(region) = region_of_queue_url(queue_url) else {
            return self.default_client.clone();
        };
        if self.base.region().map(|r| r.as_ref()) == Some(region.as_str()) {
            return self.default_client.clone();
        }
        let mut clients = match self.regional.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        clients
            .entry(region.clone())
            .or_insert_with(|| {
                let config = aws_sdk_sqs::config::Builder::from(&self.base).region(Region::new(region)).build();
                Client::from_conf(config)
            })
            .clone()
    }
}

/// `sqs.<region>.amazonaws.com` (or the legacy `<region>.queue.amazonaws.com`) → region.
pub fn region_of_queue_url(url: &str) -> Option<String> {
    let host = url.split("://").nth(1)?.split('/').next()?;
    let parts: Vec<&str> = host.split('.').collect();
    match parts.as_slice() {
        ["sqs", region, "amazonaws", ..] => Some(region.to_string()),
        [region, "queue", "amazonaws", ..] => Some(region.to_string()),
        _ => None,
    }
}

#[async_trait]
impl JobQueue for SqsJobQueue {
    async fn send(&self, queue_url: &str, body: &str, fifo_group: Option<&str>) -> Result<(), AwsError> {
        let mut request = self.client_for(queue_url).send_message().queue_url(queue_url).message_body(body);
        if let Some(group) = fifo_group {
            request = request.message_group_id(group).message_deduplication_id(group);
        }
        request.send().await.map_err(|e| aws_error("sqs:SendMessage", e))?;
        Ok(())
    }
}

#[async_trait]
impl DelayedQueue for SqsJobQueue {
    async fn send_delayed(&self, queue_url: &str, body: &str, delay_seconds: u32) -> Result<(), AwsError> {
        self.client_for(queue_url)
            .send_message()
            .queue_url(queue_url)
            .message_body(body)
            .delay_seconds(delay_seconds.min(900) as i32)
            .send()
            .await
            .map_err(|e| aws_error("sqs:SendMessage", e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_from_url() {
        assert_eq!(region_of_queue_url("https://sqs.eu-west-1.amazonaws.com/123/q").as_deref(), Some("eu-west-1"));
        assert_eq!(region_of_queue_url("https://us-east-2.queue.amazonaws.com/123/q").as_deref(), Some("us-east-2"));
        assert_eq!(region_of_queue_url("http://127.0.0.1:5000/123/q"), None);
        assert_eq!(region_of_queue_url("not a url"), None);
    }
}
