//! In-memory fakes of the ports, for unit tests of handlers. Not for production: they keep
//! everything in memory and can be told to fail.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;

use crate::config::Secret;
use crate::error::{AwsError, AwsErrorKind};
use crate::ports::{JobQueue, ParameterStore};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// A parameter store holding plain values.
#[derive(Default)]
pub struct MemoryParameterStore {
    values: Mutex<BTreeMap<String, String>>,
    failure: Mutex<Option<AwsError>>,
    pub calls: AtomicUsize,
}

impl MemoryParameterStore {
    pub fn with(values: &[(&str, &str)]) -> Self {
        let store = Self::default();
        for (k, v) in values {
            store.put(k, v);
        }
        store
    }

    pub fn put(&self, name: &str, value: &str) {
        lock(&self.values).insert(name.to_string(), value.to_string());
    }

    /// Makes every following read fail with `error` (None to heal).
    pub fn fail_with(&self, error: Option<AwsError>) {
        *lock(&self.failure) = error;
    }
}

#[async_trait]
impl ParameterStore for MemoryParameterStore {
    async fn get_parameters(&self, names: &[String]) -> Result<BTreeMap<String, Secret<String>>, AwsError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if let Some(e) = lock(&self.failure).clone() {
            return Err(e);
        }
        let values = lock(&self.values);
        let missing: Vec<&str> = names.iter().filter(|n| !values.contains_key(*n)).map(String::as_str).collect();
        if !missing.is_empty() {
            return Err(AwsError::new(
                "ssm:GetParameters",
                AwsErrorKind::NotFound,
                Some("ParameterNotFound".into()),
                format!("parameters not found: {}", missing.join(", ")),
            ));
        }
        Ok(names.iter().map(|n| (n.clone(), Secret::new(values[n].clone()))).collect())
    }
}

/// One message sent to a [`MemoryJobQueue`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentMessage {
    pub queue_url: String,
    pub body: String,
    pub fifo_group: Option<String>,
}

/// A queue that records what was sent.
#[derive(Default)]
pub struct MemoryJobQueue {
    pub sent: Mutex<Vec<SentMessage>>,
    failure: Mutex<Option<AwsError>>,
}

impl MemoryJobQueue {
    pub fn fail_with(&self, error: Option<AwsError>) {
        *lock(&self.failure) = error;
    }

    pub fn messages(&self) -> Vec<SentMessage> {
        lock(&self.sent).clone()
    }
}

#[async_trait]
impl JobQueue for MemoryJobQueue {
    async fn send(&self, queue_url: &str, body: &str, fifo_group: Option<&str>) -> Result<(), AwsError> {
        if let Some(e) = lock(&self.failure).clone() {
            return Err(e);
        }
        lock(&self.sent).push(SentMessage {
            queue_url: queue_url.to_string(),
            body: body.to_string(),
            fifo_group: fifo_group.map(str::to_string),
        });
        Ok(())
    }
}
