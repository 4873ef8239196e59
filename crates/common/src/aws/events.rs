//! EventBridge adapter: publishes GitHub deliveries on the runners' event bus.

use async_trait::async_trait;
use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;

use super::{SdkConfig, aws_error};
use crate::error::{AwsError, AwsErrorKind};
use crate::ports::{EventBus, OutgoingEvent};

pub struct EventBridgeBus {
    client: Client,
}

impl EventBridgeBus {
    pub fn new(config: &SdkConfig) -> Self {
        Self { client: Client::new(config) }
    }
}

#[async_trait]
impl EventBus for EventBridgeBus {
    async fn put_event(&self, event: &OutgoingEvent<'_>) -> Result<(), AwsError> {
        let entry = PutEventsRequestEntry::builder()
            .event_bus_name(event.bus)
            .source(event.source)
            .detail_type(event.detail_type)
            .detail(event.detail)
            .build();
        let answer =
            self.client.put_events().entries(entry).send().await.map_err(|e| aws_error("events:PutEvents", e))?;
        // PutEvents answers 200 even when it refused the entry: the count says so.
        if answer.failed_entry_count() > 0 {
            let failed = answer.entries().iter().find(|e| e.error_code().is_some());
            let code = failed.and_then(|e| e.error_code()).map(str::to_string);
            let message = failed.and_then(|e| e.error_message()).unwrap_or("the entry was not published").to_string();
            // Throttling and internal failures of one entry are worth a retry; a malformed
            // entry is not, but the caller answers 5xx either way (the event was not published).
            let kind = match code.as_deref() {
                Some("ThrottlingException") => AwsErrorKind::Throttled,
                Some("InternalException") | Some("InternalFailure") | None => AwsErrorKind::Transient,
                Some(_) => AwsErrorKind::Client,
            };
            return Err(AwsError::new("events:PutEvents", kind, code, message));
        }
        Ok(())
    }
}
