//! The GitHub ports over [`GithubClient`]: the REST calls of the runner lifecycle, read through
//! small serde structs (octocrab's models are stricter than we need).

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::json;

use super::client::{GithubClient, Installation};
use super::owner_path;
use crate::config::Secret;
use crate::deadline::Deadline;
use crate::domain::runner::RunnerOwner;
use crate::error::GithubError;
use crate::ports::{GithubApi, GithubOwner, GithubRunner, JitConfig, RunnerRemoval, Withdrawal};

/// One owner through one installation.
pub struct InstallationOwner<'a> {
    installation: Installation<'a>,
    owner: RunnerOwner,
    app_id: u64,
}

#[derive(Deserialize)]
struct RunnerJson {
    id: u64,
    name: String,
    status: String,
    busy: bool,
    #[serde(default)]
    labels: Vec<LabelJson>,
}

#[derive(Deserialize)]
struct LabelJson {
    name: String,
    /// `read-only` or `custom`.
    #[serde(rename = "type", default)]
    kind: Option<String>,
}

impl From<RunnerJson> for GithubRunner {
    fn from(r: RunnerJson) -> Self {
        GithubRunner {
            id: r.id,
            name: r.name,
            status: r.status,
            busy: r.busy,
            custom_labels: r
                .labels
                .iter()
                .filter(|l| l.kind.as_deref() == Some("custom"))
                .map(|l| l.name.clone())
                .collect(),
            labels: r.labels.into_iter().map(|l| l.name).collect(),
        }
    }
}

fn not_found_is_none<T>(result: Result<T, GithubError>) -> Result<Option<T>, GithubError> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

#[async_trait]
impl GithubOwner for InstallationOwner<'_> {
    fn owner(&self) -> &RunnerOwner {
        &self.owner
    }

    fn app_id(&self) -> u64 {
        self.app_id
    }

    async fn job_status(&self, repo_owner: &str, repo: &str, job_id: u64) -> Result<Option<String>, GithubError> {
        #[derive(Deserialize)]
        struct Job {
            status: String,
        }
        let job: Option<Job> = not_found_is_none(
            self.installation.get(&format!("/repos/{repo_owner}/{repo}/actions/jobs/{job_id}")).await,
        )?;
        Ok(job.map(|j| j.status))
    }

    async fn runner_group_id(&self, name: &str) -> Result<Option<u64>, GithubError> {
        let RunnerOwner::Org(org) = &self.owner else {
            // Repository runners have no groups; the API takes the default group's id.
            return Ok(Some(1));
        };
        #[derive(Deserialize)]
        struct Group {
            id: u64,
            name: String,
        }
        let groups: Vec<Group> = self
            .installation
            .get_all_pages(&format!("/orgs/{org}/actions/runner-groups?per_page=100"), "runner_groups")
            .await?;
        Ok(groups.into_iter().find(|g| g.name == name).map(|g| g.id))
    }

    async fn create_jit_config(
        &self,
        name: &str,
        runner_group_id: u64,
        labels: &[String],
    ) -> Result<JitConfig, GithubError> {
        #[derive(Deserialize)]
        struct Created {
            runner: RunnerJson,
            encoded_jit_config: String,
        }
        let path = format!("{}/actions/runners/generate-jitconfig", owner_path(&self.owner));
        let body = json!({"name": name, "runner_group_id": runner_group_id, "labels": labels});
        let created: Created = self.installation.post(&path, &body).await?;
        Ok(JitConfig { runner_id: created.runner.id, encoded: Secret::new(created.encoded_jit_config) })
    }

    async fn registration_token(&self) -> Result<Secret<String>, GithubError> {
        #[derive(Deserialize)]
        struct Token {
            token: String,
        }
        let path = format!("{}/actions/runners/registration-token", owner_path(&self.owner));
        let token: Token = self.installation.post(&path, &json!({})).await?;
        Ok(Secret::new(token.token))
    }

    fn registration_held(&self, jit: bool) -> Option<std::time::Duration> {
        let endpoint = if jit { "generate-jitconfig" } else { "registration-token" };
        let path = format!("{}/actions/runners/{endpoint}", owner_path(&self.owner));
        self.installation.client().held_for(self.installation.app, &http::Method::POST, &path)
    }

    async fn list_runners(&self) -> Result<Vec<GithubRunner>, GithubError> {
        let path = format!("{}/actions/runners?per_page=100", owner_path(&self.owner));
        let runners: Vec<RunnerJson> = self.installation.get_all_pages(&path, "runners").await?;
        Ok(runners.into_iter().map(GithubRunner::from).collect())
    }

    async fn get_runner(&self, id: u64) -> Result<Option<GithubRunner>, GithubError> {
        let path = format!("{}/actions/runners/{id}", owner_path(&self.owner));
        Ok(not_found_is_none(self.installation.get::<RunnerJson>(&path).await)?.map(GithubRunner::from))
    }

    async fn remove_custom_labels(&self, id: u64) -> Result<Withdrawal, GithubError> {
        // Answers the remaining (read-only) labels, which we do not need.
        let path = format!("{}/actions/runners/{id}/labels", owner_path(&self.owner));
        match self.installation.delete(&path).await {
            Ok(_) => Ok(Withdrawal::Withdrawn),
            Err(e) if e.is_not_found() => Ok(Withdrawal::NotFound),
            Err(e) => Err(e),
        }
    }

    async fn delete_runner(&self, id: u64) -> Result<RunnerRemoval, GithubError> {
        let path = format!("{}/actions/runners/{id}", owner_path(&self.owner));
        match self.installation.delete(&path).await {
            Ok(_) => Ok(RunnerRemoval::Deleted),
            Err(e) if e.is_not_found() => Ok(RunnerRemoval::NotFound),
            Err(e) if e.status() == Some(422) => Ok(RunnerRemoval::Busy),
            Err(e) => Err(e),
        }
    }

    async fn run_jobs(
        &self,
        repo_owner: &str,
        repo: &str,
        run_id: u64,
    ) -> Result<Vec<crate::domain::termination::RunJob>, GithubError> {
        #[derive(Deserialize)]
        struct Job {
            id: u64,
            #[serde(default)]
            name: String,
            status: String,
            conclusion: Option<String>,
            #[serde(default)]
            run_attempt: Option<u32>,
            runner_name: Option<String>,
            #[serde(default)]
            labels: Vec<String>,
        }
        let path = format!("/repos/{repo_owner}/{repo}/actions/runs/{run_id}/jobs?filter=latest&per_page=100");
        let jobs: Vec<Job> = self.installation.get_all_pages(&path, "jobs").await?;
        Ok(jobs
            .into_iter()
            .map(|j| crate::domain::termination::RunJob {
                id: j.id,
                name: j.name,
                status: j.status,
                conclusion: j.conclusion,
                run_attempt: j.run_attempt.unwrap_or(1),
                runner_name: j.runner_name.filter(|n| !n.is_empty()),
                labels: j.labels,
            })
            .collect())
    }

    async fn rerun_job(&self, repo_owner: &str, repo: &str, job_id: u64) -> Result<(), GithubError> {
        let path = format!("/repos/{repo_owner}/{repo}/actions/jobs/{job_id}/rerun");
        self.installation.post_status(&path, &serde_json::json!({})).await.map(|_| ())
    }
}

#[async_trait]
impl GithubApi for GithubClient {
    fn choose_app(&self) -> usize {
        GithubClient::choose_app(self)
    }

    fn app_id(&self, app: usize) -> u64 {
        self.apps().get(app).map_or(0, |a| a.app_id)
    }

    fn rate_limit_remaining(&self, app: usize) -> Option<u64> {
        self.rate_limit(app).map(|r| r.remaining)
    }

    fn take_rate_limits_hit(&self, app: usize) -> u64 {
        GithubClient::take_rate_limits_hit(self, app)
    }

    fn web_url(&self) -> String {
        self.urls().web.clone()
    }

    async fn for_owner(
        &self,
        app: usize,
        owner: &RunnerOwner,
        installation_hint: Option<u64>,
        deadline: Deadline,
    ) -> Result<Box<dyn GithubOwner + '_>, GithubError> {
        let installation = GithubClient::for_owner(self, app, owner, installation_hint, deadline).await?;
        Ok(Box::new(InstallationOwner { installation, owner: owner.clone(), app_id: GithubApi::app_id(self, app) }))
    }
}
