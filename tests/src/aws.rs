//! Helpers to set up and inspect AWS resources in moto, as Terraform would create them.

use aws_sdk_sqs::types::QueueAttributeName;
use aws_sdk_ssm::types::ParameterType;

use crate::moto::Moto;

/// Test-side AWS clients.
pub struct Aws {
    pub ssm: aws_sdk_ssm::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub ec2: aws_sdk_ec2::Client,
    pub s3: aws_sdk_s3::Client,
}

impl Aws {
    pub async fn new(moto: &Moto) -> Self {
        let config = moto.sdk_config().await;
        Self {
            ssm: aws_sdk_ssm::Client::new(&config),
            sqs: aws_sdk_sqs::Client::new(&config),
            ec2: aws_sdk_ec2::Client::new(&config),
            s3: aws_sdk_s3::Client::new(&config),
        }
    }

    /// Writes a SecureString (or String) parameter.
    pub async fn put_parameter(&self, name: &str, value: &str, secure: bool) {
        self.ssm
            .put_parameter()
            .name(name)
            .value(value)
            .r#type(if secure { ParameterType::SecureString } else { ParameterType::String })
            .overwrite(true)
            .send()
            .await
            .unwrap_or_else(|e| panic!("put parameter {name}: {e:?}"));
    }

    /// Creates a queue; returns its URL.
    pub async fn create_queue(&self, name: &str, fifo: bool) -> String {
        let mut request = self.sqs.create_queue().queue_name(name);
        if fifo {
            request = request
                .attributes(QueueAttributeName::FifoQueue, "true")
                .attributes(QueueAttributeName::ContentBasedDeduplication, "false");
        }
        request
            .send()
            .await
            .unwrap_or_else(|e| panic!("create queue {name}: {e:?}"))
            .queue_url()
            .unwrap_or_default()
            .to_string()
    }

    /// Receives (and deletes) every message now visible in a queue: (body, group id).
    pub async fn drain(&self, queue_url: &str) -> Vec<(String, Option<String>)> {
        let mut out = Vec::new();
        loop {
            let received = self
                .sqs
                .receive_message()
                .queue_url(queue_url)
                .max_number_of_messages(10)
                .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::MessageGroupId)
                .wait_time_seconds(0)
                .send()
                .await
                .unwrap_or_else(|e| panic!("receive from {queue_url}: {e:?}"));
            let messages = received.messages();
            if messages.is_empty() {
                return out;
            }
            for m in messages {
                let group = m
                    .attributes()
                    .and_then(|a| a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::MessageGroupId))
                    .cloned();
                out.push((m.body().unwrap_or_default().to_string(), group));
                if let Some(handle) = m.receipt_handle() {
                    let _ = self.sqs.delete_message().queue_url(queue_url).receipt_handle(handle).send().await;
                }
            }
        }
    }
}
