//! Lambda's SQS event source mapping, emulated: receive a batch, invoke the function with the
//! SQS event Lambda would build, delete the messages it did not report in `batchItemFailures`.
//! Reported messages (and every message of a failed invocation) stay in the queue and come back
//! after their visibility timeout, exactly as with `ReportBatchItemFailures` in AWS.

use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};
use serde_json::Value;

use crate::lambda_emulator::{InvokeError, LambdaFunction};

/// One poll's outcome.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Poll {
    pub received: usize,
    pub deleted: usize,
    /// Reported in `batchItemFailures` (or the invocation failed).
    pub retried: usize,
}

pub struct SqsEventSource {
    pub sqs: aws_sdk_sqs::Client,
    pub queue_url: String,
    pub queue_arn: String,
    pub batch_size: i32,
    /// Long-poll wait per receive.
    pub wait_seconds: i32,
}

impl SqsEventSource {
    pub fn new(sqs: aws_sdk_sqs::Client, queue_url: &str, batch_size: i32) -> Self {
        let name = queue_url.rsplit('/').next().unwrap_or_default();
        Self {
            sqs,
            queue_url: queue_url.to_string(),
            queue_arn: format!("arn:aws:sqs:{}:{}:{name}", crate::moto::REGION, crate::moto::ACCOUNT),
            batch_size,
            wait_seconds: 0,
        }
    }

    /// Receives up to a batch and builds Lambda's SQS event; `None` when the queue is empty.
    pub async fn receive(&self) -> Option<(Value, Vec<(String, String)>)> {
        let out = self
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(self.batch_size)
            .wait_time_seconds(self.wait_seconds)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .ok()?;
        let messages = out.messages();
        if messages.is_empty() {
            return None;
        }
        let handles = messages
            .iter()
            .map(|m| {
                (m.message_id().unwrap_or_default().to_string(), m.receipt_handle().unwrap_or_default().to_string())
            })
            .collect();
        Some((local::sqs_event_json(messages, &self.queue_arn, crate::moto::REGION), handles))
    }

    /// One round: receive, invoke, delete what succeeded.
    pub async fn poll_once(&self, function: &LambdaFunction) -> Option<Poll> {
        let (event, handles) = self.receive().await?;
        let outcome = function.invoke(event).await;
        let failed: Vec<String> = match &outcome {
            Ok(response) => response["batchItemFailures"]
                .as_array()
                .map(|a| a.iter().filter_map(|f| f["itemIdentifier"].as_str().map(str::to_string)).collect())
                .unwrap_or_default(),
            Err(InvokeError::Function { .. } | InvokeError::Timeout | InvokeError::Exited(_)) => {
                handles.iter().map(|(id, _)| id.clone()).collect()
            }
        };
        let done: Vec<&(String, String)> = handles.iter().filter(|(id, _)| !failed.contains(id)).collect();
        for chunk in done.chunks(10) {
            let entries: Vec<DeleteMessageBatchRequestEntry> = chunk
                .iter()
                .enumerate()
                .filter_map(|(i, (_, handle))| {
                    DeleteMessageBatchRequestEntry::builder().id(i.to_string()).receipt_handle(handle).build().ok()
                })
                .collect();
            let _ = self.sqs.delete_message_batch().queue_url(&self.queue_url).set_entries(Some(entries)).send().await;
        }
        Some(Poll { received: handles.len(), deleted: done.len(), retried: failed.len() })
    }
}
