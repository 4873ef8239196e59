//! An App's webhook delivery log and redelivery (`/app/hook/deliveries`), with the App's JWT.

use async_trait::async_trait;
use http::Method;
use serde::Deserialize;

use super::client::{Auth, GithubClient};
use crate::deadline::Deadline;
use crate::domain::redelivery::Delivery;
use crate::error::GithubError;
use crate::ports::{DeliveryPage, WebhookDeliveries};

/// A log entry as GitHub sends it (the fields used; `status_code` is 0 without an answer).
#[derive(Debug, Deserialize)]
struct DeliveryItem {
    id: u64,
    guid: String,
    delivered_at: chrono::DateTime<chrono::Utc>,
    #[serde(default)]
    redelivery: bool,
    #[serde(default)]
    status_code: u16,
    event: String,
    #[serde(default)]
    action: Option<String>,
}

/// The `cursor` query parameter of a `rel="next"` link.
fn cursor_of(next: &str) -> Option<String> {
    let query = next.split_once('?')?.1;
    query.split('&').find_map(|pair| pair.strip_prefix("cursor=").map(str::to_string)).filter(|c| !c.is_empty())
}

#[async_trait]
impl WebhookDeliveries for GithubClient {
    fn app_count(&self) -> usize {
        self.apps().len()
    }

    fn app_id(&self, app: usize) -> u64 {
        self.apps().get(app).map_or(0, |a| a.app_id)
    }

    async fn list_deliveries(
        &self,
        app: usize,
        cursor: Option<&str>,
        per_page: u32,
        deadline: Deadline,
    ) -> Result<DeliveryPage, GithubError> {
        let mut path = format!("/app/hook/deliveries?per_page={}", per_page.clamp(1, 100));
        if let Some(cursor) = cursor {
            path.push_str("&cursor=");
            path.push_str(cursor);
        }
        let response = self.send(Auth::App(app), Method::GET, &path, None, deadline).await?;
        let items: Vec<DeliveryItem> = response.json()?;
        Ok(DeliveryPage {
            deliveries: items
                .into_iter()
                .map(|d| Delivery {
                    id: d.id,
                    guid: d.guid,
                    delivered_at: d.delivered_at,
                    redelivery: d.redelivery,
                    status_code: d.status_code,
                    event: d.event,
                    action: d.action,
                })
                .collect(),
            next_cursor: response.next_page().as_deref().and_then(cursor_of),
        })
    }

    async fn redeliver(&self, app: usize, delivery_id: u64, deadline: Deadline) -> Result<(), GithubError> {
        let path = format!("/app/hook/deliveries/{delivery_id}/attempts");
        self.send(Auth::App(app), Method::POST, &path, Some(&serde_json::json!({})), deadline).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cursor_comes_from_the_next_link() {
        assert_eq!(
            cursor_of("/app/hook/deliveries?per_page=100&cursor=v1_12077215967").as_deref(),
            Some("v1_12077215967")
        );
        assert_eq!(cursor_of("/app/hook/deliveries?per_page=100"), None);
        let item: DeliveryItem = serde_json::from_str(
            r#"{"id":12345678,"guid":"0b989ba4-242f-11e5-81e1-c7b6966d2516","delivered_at":"2019-06-03T00:57:16Z",
                "redelivery":false,"duration":0.27,"status":"OK","status_code":200,"event":"issues","action":"opened",
                "installation_id":123,"repository_id":456,"throttled_at":"2019-06-03T00:57:16Z"}"#,
        )
        .unwrap();
        assert_eq!((item.id, item.status_code, item.event.as_str()), (12345678, 200, "issues"));
    }
}
