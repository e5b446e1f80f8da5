//! Runbook runs in scenarios: `apply_runbook`, `start_run`, `wait_for_run` and the
//! `run_status` assertion, through OpsService as an operator would.

use std::collections::BTreeSet;

use crate::scenario::EventParams;

use super::*;

/// Events read per ListRunEvents call when a run's history is checked.
const EVENT_PAGE: u32 = 10_000;

impl Sim {
    pub(super) async fn apply_runbook(&self, yaml: &str) -> Result<String, String> {
        let request = v1::ApplyRunbookRequest { yaml: yaml.to_owned(), ..Default::default() };
        let applied = self.ops().apply_runbook(request).await.map_err(|e| format!("ApplyRunbook: {e}"))?.into_owned();
        let runbook = applied.runbook.as_option().ok_or("ApplyRunbook answered without the runbook")?;
        Ok(format!("runbook {} version {}", runbook.name, runbook.version))
    }

    pub(super) async fn start_run(&self, runbook: &str, p: &EventParams) -> Result<String, String> {
        let request = v1::StartRunRequest {
            runbook: runbook.to_owned(),
            nodes: p.nodes.clone(),
            selector: p.selector.clone().unwrap_or_default(),
            pool: p.pool.clone().unwrap_or_default(),
            ..Default::default()
        };
        let started = self.ops().start_run(request).await.map_err(|e| format!("StartRun {runbook}: {e}"))?.into_owned();
        let run = started.run.as_option().ok_or("StartRun answered without the run")?;
        Ok(format!("run {} of {runbook} over {} node(s)", run.id, run.targets.len()))
    }

    /// The newest run of `runbook`.
    pub(super) async fn newest_run(&self, runbook: &str) -> Result<Option<v1::Run>, String> {
        let mut request = v1::ListRunsRequest { kind: "runbook".into(), page_size: 100, ..Default::default() };
        loop {
            let page = self.ops().list_runs(request.clone()).await.map_err(|e| format!("ListRuns: {e}"))?.into_owned();
            if let Some(run) = page.runs.iter().find(|r| r.runbook == runbook) {
                return Ok(Some(run.clone()));
            }
            if page.next_page_token.is_empty() {
                return Ok(None);
            }
            request.page_token = page.next_page_token;
        }
    }

    pub(super) async fn wait_for_run(&mut self, runbook: &str, p: &EventParams) -> Result<String, String> {
        let expected = p.expected_status.as_deref().unwrap_or_default().trim().to_ascii_lowercase();
        let timeout = p.timeout.map_or(DEFAULT_WAIT_TIMEOUT, |t| t.0);
        let since = self.driver.now();
        let deadline = since + timeout;
        loop {
            let run = self.newest_run(runbook).await?;
            let status = run.as_ref().map_or("not started", |r| r.status.as_str()).to_owned();
            if status == expected {
                let waited = self.driver.now().saturating_sub(since).as_secs_f64();
                return Ok(format!("the newest run of {runbook} is {status} (after {waited:.1} s simulated)"));
            }
            if self.driver.now() >= deadline {
                let error =
                    run.map(|r| r.error).filter(|e| !e.is_empty()).map_or_else(String::new, |e| format!(": {e}"));
                return Err(format!(
                    "the newest run of {runbook} did not become {expected} within {}; it is {status}{error}",
                    bosun_config::duration::format(timeout)
                ));
            }
            let next = (self.driver.now() + WAIT_POLL).min(deadline);
            self.run_until(next).await;
        }
    }

    /// `run_status`: the newest run of `runbook` is `expected`, and its events are whole: in a
    /// succeeded run every node started and finished every step; in any other, every step
    /// begun has ended (finished or failed) or the run stopped with it under way.
    pub(super) async fn check_run(&self, runbook: &str, expected: &str) -> (bool, String) {
        let run = match self.newest_run(runbook).await {
            Ok(Some(run)) => run,
            Ok(None) => return (false, format!("no run of runbook {runbook}")),
            Err(error) => return (false, error),
        };
        let expected = expected.trim().to_ascii_lowercase();
        if run.status != expected {
            let error = if run.error.is_empty() { String::new() } else { format!(" ({})", run.error) };
            return (false, format!("{}{error}", run.status));
        }
        let steps = match self.step_events(&run).await {
            Ok(steps) => steps,
            Err(error) => return (false, error),
        };
        let want = run.targets.len() * steps.count;
        let unended = steps.started.iter().filter(|s| !steps.finished.contains(s) && !steps.failed.contains(s)).count();
        let whole = if run.status == "succeeded" {
            steps.started.len() == want && steps.finished.len() == want
        } else {
            // A run that stopped on failure leaves the steps under way then unended.
            let result: serde_json::Value = serde_json::from_str(&run.result_json).unwrap_or_default();
            let left = result["left_mid_way"].as_u64().unwrap_or(0) as usize;
            unended == left
        };
        let actual = format!(
            "{}: {} node(s) x {} step(s); {} started, {} finished, {} failed, {unended} unended",
            run.status,
            run.targets.len(),
            steps.count,
            steps.started.len(),
            steps.finished.len(),
            steps.failed.len()
        );
        (whole, actual)
    }

    /// The (target, step) pairs a run's events record as started, finished and failed, and
    /// how many steps its runbook has.
    async fn step_events(&self, run: &v1::Run) -> Result<StepEvents, String> {
        let mut steps = StepEvents::default();
        let mut after = 0;
        loop {
            let request = v1::ListRunEventsRequest {
                run_id: run.id.clone(),
                after_seq: after,
                limit: EVENT_PAGE,
                ..Default::default()
            };
            let page =
                self.ops().list_run_events(request).await.map_err(|e| format!("ListRunEvents: {e}"))?.into_owned();
            for event in &page.events {
                let key = (event.target.clone(), event.step.unwrap_or(u32::MAX));
                match event.r#type.as_str() {
                    "step_started" => steps.started.insert(key),
                    "step_finished" => steps.finished.insert(key),
                    "step_failed" => steps.failed.insert(key),
                    _ => false,
                };
                after = event.seq;
            }
            if page.events.len() < EVENT_PAGE as usize {
                break;
            }
        }
        let input: serde_json::Value = serde_json::from_str(&run.input_json).map_err(|e| format!("run input: {e}"))?;
        let spec = input["spec"].as_str().unwrap_or_default();
        steps.count =
            bosun_config::runbook::RunbookSpec::parse(spec).map_err(|e| format!("run's runbook: {e}"))?.steps.len();
        Ok(steps)
    }
}

/// What a run's events say of its steps: (target, step) pairs.
#[derive(Debug, Default)]
struct StepEvents {
    started: BTreeSet<(String, u32)>,
    finished: BTreeSet<(String, u32)>,
    failed: BTreeSet<(String, u32)>,
    /// Steps in the runbook.
    count: usize,
}
