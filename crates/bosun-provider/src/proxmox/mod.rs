//! Proxmox VE's API. Read for the inventory: the cluster's resources (hypervisor nodes,
//! QEMU VMs, LXC containers, storage), each guest's configuration (its digest, its GPU
//! passthrough devices, a container's host name and OS) and the nodes' recent tasks.
//! Written for the provider: the next free vmid, a VM's clone, tags, start, stop and destroy.
//!
//! - Each write starts a task and answers its UPID (`UPID:NODE:...`);
//!   [`ProxmoxClient::wait_for_task`] reads the task's status on the node the UPID names
//!   until it ends, a bounded number of times ([`TaskPolling`]), and turns an exit status
//!   other than `OK` into an error naming the UPID and the status.
//! - A refusal's message is Proxmox's HTTP reason phrase (`500 VM 102 is running - destroy
//!   failed`), which errors quote; the body then holds no more than `{"data":null}`.
//! - Authentication is an API token, sent per request as
//!   `Authorization: PVEAPIToken=USER@REALM!TOKENID=SECRET`; the secret never reaches a log
//!   line or an error message.
//! - Every answer is the API's `{"data": ...}` envelope. Fields bosun does not read are
//!   ignored; Proxmox's habit of sending numbers as strings and booleans as 0/1 is accepted.
//! - An answer bosun cannot use (not JSON, a resource without its id, a VM without a vmid)
//!   is an error naming the call and the entry: a partial answer is never taken for the
//!   whole cluster, so a sync built on it can refuse to mark anything gone.
//! - [`Snapshot::to_inventory`] turns a snapshot into inventory records with stable keys
//!   and state digests.
//! - [`mock`] serves the same endpoints from a generated cluster, for the tests and for
//!   `bosun dev proxmox-mock`.

mod inventory;
pub mod mock;
mod provider;
mod wire;

use std::time::Duration;

use reqwest::Method;
use serde::de::DeserializeOwned;
use url::Url;

use bosun_config::{ProxmoxEndpoint, SecretSource};

use crate::http::{self, Failure, HttpClient, Secret, ServerTrust};
use crate::provider::ProviderError;

pub use provider::{ProxmoxProvider, TAG, parse_provider_instance_id};
pub use wire::{GuestConfig, GuestKind, PveGuest, PveNode, PveStorage, PveTask, TaskStatus};

/// Guest configurations read at once during a snapshot.
const CONFIG_CONCURRENCY: usize = 16;
/// Tasks read per request, and per node in a snapshot.
const TASK_PAGE: usize = 500;
const TASKS_PER_NODE: usize = 1_000;

/// Everything one read of a Proxmox cluster saw.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub nodes: Vec<PveNode>,
    pub vms: Vec<PveGuest>,
    pub containers: Vec<PveGuest>,
    /// One entry per storage and node that sees it.
    pub storage: Vec<PveStorage>,
    /// The nodes' recent tasks, newest first per node.
    pub tasks: Vec<PveTask>,
}

/// What a clone of a VM is to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloneVm<'a> {
    /// The new VM's vmid (from [`ProxmoxClient::next_vmid`]).
    pub newid: u32,
    /// A DNS name.
    pub name: &'a str,
    pub description: &'a str,
    /// The node the clone goes to, when not the source's (the source's disks must then be
    /// on shared storage).
    pub target: Option<&'a str>,
    /// Where the clone's disks go (a full clone only), when not where the source's are.
    pub storage: Option<&'a str>,
    /// A full copy (`true`) or a linked clone (`false`, templates only); `None`: Proxmox's
    /// default, linked for a template and full otherwise.
    pub full: Option<bool>,
}

/// How often, and how many times, a task's status is read while waiting for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskPolling {
    pub interval: Duration,
    pub max_polls: u32,
}

/// A client of one Proxmox VE cluster's API.
#[derive(Debug, Clone)]
pub struct ProxmoxClient {
    /// The source's name, in every error (`proxmox pve1`).
    name: String,
    base: Url,
    http: HttpClient,
    token_id: String,
    token_secret: Secret,
    /// A deadline per call other than the shared client's.
    timeout: Option<Duration>,
}

impl ProxmoxClient {
    /// A client of the cluster at `url` (`https://pve.example:8006`; `http://` for a local
    /// test endpoint) with the API token `token_id` (`USER@REALM!TOKENID`), trusting the
    /// system's roots.
    pub fn new(name: &str, url: &str, token_id: &str, token_secret: &str) -> Result<Self, ProviderError> {
        Self::build(name, url, token_id, token_secret, &ServerTrust::System)
    }

    /// The client of a configured endpoint: the token secret read from its environment
    /// variable or file, certificates checked as `verify_tls` and `ca_file` say. A missing
    /// or unusable secret is [`ProviderError::Unauthorized`] naming where it should be (never
    /// the secret); an unreadable or invalid CA file is [`ProviderError::Invalid`].
    pub fn from_endpoint(name: &str, endpoint: &ProxmoxEndpoint) -> Result<Self, ProviderError> {
        Self::from_endpoint_with_env(name, endpoint, |variable| std::env::var(variable).ok())
    }

    /// [`ProxmoxClient::from_endpoint`] with the environment read through `env`.
    pub fn from_endpoint_with_env(
        name: &str,
        endpoint: &ProxmoxEndpoint,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ProviderError> {
        let label = format!("proxmox {name}");
        let secret = read_secret(&endpoint.token_secret, env)
            .map_err(|problem| Failure::Unauthorized.error(&label, format!("no usable API token secret: {problem}")))?;
        let trust = match (&endpoint.ca_file, endpoint.verify_tls) {
            (_, false) => ServerTrust::AnyCertificate,
            (None, true) => ServerTrust::System,
            (Some(file), true) => ServerTrust::WithRoots {
                file: file.clone(),
                roots: http::read_ca_file(file).map_err(|problem| Failure::Invalid.error(&label, problem))?,
            },
        };
        Self::build(name, endpoint.url.as_str(), &endpoint.token_id, &secret, &trust)
    }

    fn build(
        name: &str,
        url: &str,
        token_id: &str,
        token_secret: &str,
        trust: &ServerTrust,
    ) -> Result<Self, ProviderError> {
        let name = format!("proxmox {name}");
        let base = http::parse_base_url(&name, url)?;
        if !bosun_config::proxmox::is_token_id(token_id) {
            return Err(Failure::Invalid.error(&name, format!("token_id {token_id:?} is not USER@REALM!TOKENID")));
        }
        if !is_header_safe(token_secret) {
            return Err(
                Failure::Invalid.error(&name, "the token secret is empty or holds characters a header cannot carry")
            );
        }
        let http = HttpClient::with_trust(&name, &base, trust)?;
        Ok(Self {
            name,
            base,
            http,
            token_id: token_id.to_owned(),
            token_secret: Secret::new(token_secret),
            timeout: None,
        })
    }

    /// The same client with a shorter deadline per call (tests of timeouts).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// `GET /api2/json{path}` and the `data` of its answer.
    async fn get<T: DeserializeOwned>(&self, path: &str, query: &[(&str, String)]) -> Result<T, ProviderError> {
        let mut url = http::join(&self.base, &format!("/api2/json{path}"));
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        self.call(Method::GET, url, &format!("GET {path}"), None).await
    }

    /// `POST /api2/json{path}` with `form` as its parameters, and the `data` of its answer.
    async fn post<T: DeserializeOwned>(&self, path: &str, form: &[(&str, String)]) -> Result<T, ProviderError> {
        let url = http::join(&self.base, &format!("/api2/json{path}"));
        let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
        self.call(Method::POST, url, &format!("POST {path}"), Some(body)).await
    }

    /// One call: the token in its header, the answer's `data` or an error naming `what`.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        what: &str,
        form: Option<String>,
    ) -> Result<T, ProviderError> {
        self.call_for_data(method, url, what, form)
            .await?
            .ok_or_else(|| Failure::Unavailable.error(&self.name, format!("{what}: the answer has no data")))
    }

    /// [`ProxmoxClient::call`] for calls whose answer may be `{"data":null}`.
    async fn call_for_data<T: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        what: &str,
        form: Option<String>,
    ) -> Result<Option<T>, ProviderError> {
        let mut request = self
            .http
            .request(method, url)
            .header("authorization", format!("PVEAPIToken={}={}", self.token_id, self.token_secret.expose()));
        if let Some(form) = form {
            request = request.header("content-type", "application/x-www-form-urlencoded").body(form);
        }
        if let Some(timeout) = self.timeout {
            request = request.timeout(timeout);
        }
        let response = self.http.send(request, what).await?;
        if !response.is_success() {
            let failure = Failure::from_status(response.status);
            // Proxmox says what went wrong in the reason phrase; the body is `{"data":null}`
            // or names the bad parameters.
            let status = match &response.reason {
                Some(reason) => format!("{} {reason}", response.status.as_u16()),
                None => response.status.to_string(),
            };
            return Err(failure.error(&self.name, format!("{what}: HTTP {status}: {}", response.snippet())));
        }
        let envelope: wire::Envelope<T> = response.json(&self.name, what)?;
        Ok(envelope.data)
    }

    fn malformed(&self, what: &str, problem: impl std::fmt::Display) -> ProviderError {
        Failure::Unavailable.error(&self.name, format!("{what}: {problem}"))
    }

    /// `/cluster/resources`: the cluster's nodes, guests and storage as Proxmox lists them.
    pub async fn cluster_resources(&self) -> Result<Snapshot, ProviderError> {
        let rows: Vec<serde_json::Value> = self.get("/cluster/resources", &[]).await?;
        let mut snapshot = Snapshot::default();
        for (index, row) in rows.iter().enumerate() {
            let entry = wire::Resource::read(row)
                .map_err(|problem| self.malformed(&format!("GET /cluster/resources [{index}]"), problem))?;
            match entry {
                wire::Resource::Node(node) => snapshot.nodes.push(node),
                wire::Resource::Guest(guest) if guest.kind == GuestKind::Qemu => snapshot.vms.push(guest),
                wire::Resource::Guest(guest) => snapshot.containers.push(guest),
                wire::Resource::Storage(storage) => snapshot.storage.push(storage),
                wire::Resource::Other => {}
            }
        }
        Ok(snapshot)
    }

    /// A guest's configuration.
    pub async fn guest_config(&self, kind: GuestKind, node: &str, vmid: u32) -> Result<GuestConfig, ProviderError> {
        if !http::is_path_segment(node) {
            return Err(Failure::Invalid.error(&self.name, format!("node name {node:?} cannot be part of a URL")));
        }
        let path = format!("/nodes/{node}/{}/{vmid}/config", kind.as_str());
        let config: serde_json::Value = self.get(&path, &[]).await?;
        GuestConfig::read(&config).map_err(|problem| self.malformed(&format!("GET {path}"), problem))
    }

    /// A node's most recent tasks, newest first, up to `limit`, read a page at a time.
    pub async fn node_tasks(&self, node: &str, limit: usize) -> Result<Vec<PveTask>, ProviderError> {
        if !http::is_path_segment(node) {
            return Err(Failure::Invalid.error(&self.name, format!("node name {node:?} cannot be part of a URL")));
        }
        let path = format!("/nodes/{node}/tasks");
        let mut tasks = Vec::new();
        while tasks.len() < limit {
            let page = TASK_PAGE.min(limit - tasks.len());
            // `source=all`: running tasks too (Proxmox lists only finished ones by default).
            let query = [("start", tasks.len().to_string()), ("limit", page.to_string()), ("source", "all".to_owned())];
            let rows: Vec<serde_json::Value> = self.get(&path, &query).await?;
            let read = rows.len();
            for (index, row) in rows.iter().enumerate() {
                let task = PveTask::read(row)
                    .map_err(|problem| self.malformed(&format!("GET {path} [{}]", tasks.len() + index), problem))?;
                tasks.push(task);
            }
            if read < page {
                break;
            }
        }
        Ok(tasks)
    }

    /// `/cluster/nextid`: the lowest vmid no guest has (a concurrent clone may take it
    /// first; the clone then fails and nothing is created).
    pub async fn next_vmid(&self) -> Result<u32, ProviderError> {
        let id: serde_json::Value = self.get("/cluster/nextid", &[]).await?;
        wire::vmid(&id).map_err(|problem| self.malformed("GET /cluster/nextid", problem))
    }

    /// Clones the VM `vmid` on `node` as `clone` says; returns the clone task's UPID.
    pub async fn clone_vm(&self, node: &str, vmid: u32, clone: &CloneVm<'_>) -> Result<String, ProviderError> {
        self.check_node(node)?;
        let mut form = vec![
            ("newid", clone.newid.to_string()),
            ("name", clone.name.to_owned()),
            ("description", clone.description.to_owned()),
        ];
        if let Some(target) = clone.target.filter(|target| *target != node) {
            self.check_node(target)?;
            form.push(("target", target.to_owned()));
        }
        if let Some(storage) = clone.storage {
            form.push(("storage", storage.to_owned()));
        }
        if let Some(full) = clone.full {
            form.push(("full", u8::from(full).to_string()));
        }
        self.post(&format!("/nodes/{node}/qemu/{vmid}/clone"), &form).await
    }

    /// Sets a VM's tags (replacing any it has), at once: no task.
    pub async fn set_tags(&self, node: &str, vmid: u32, tags: &[&str]) -> Result<(), ProviderError> {
        self.check_node(node)?;
        let path = format!("/nodes/{node}/qemu/{vmid}/config");
        let url = http::join(&self.base, &format!("/api2/json{path}"));
        let form = url::form_urlencoded::Serializer::new(String::new()).append_pair("tags", &tags.join(";")).finish();
        let _: Option<serde_json::Value> =
            self.call_for_data(Method::PUT, url, &format!("PUT {path}"), Some(form)).await?;
        Ok(())
    }

    /// Starts a VM; returns the task's UPID.
    pub async fn start_vm(&self, node: &str, vmid: u32) -> Result<String, ProviderError> {
        self.check_node(node)?;
        self.post(&format!("/nodes/{node}/qemu/{vmid}/status/start"), &[]).await
    }

    /// Stops a VM at once (a power-off, not a shutdown); returns the task's UPID.
    pub async fn stop_vm(&self, node: &str, vmid: u32) -> Result<String, ProviderError> {
        self.check_node(node)?;
        self.post(&format!("/nodes/{node}/qemu/{vmid}/status/stop"), &[]).await
    }

    /// Destroys a stopped VM with its disks, and removes it from backup jobs, replication
    /// and HA (`purge`); returns the task's UPID.
    pub async fn destroy_vm(&self, node: &str, vmid: u32) -> Result<String, ProviderError> {
        self.check_node(node)?;
        let path = format!("/nodes/{node}/qemu/{vmid}");
        let mut url = http::join(&self.base, &format!("/api2/json{path}"));
        url.query_pairs_mut().append_pair("purge", "1").append_pair("destroy-unreferenced-disks", "1");
        self.call(Method::DELETE, url, &format!("DELETE {path}"), None).await
    }

    /// Where a task stands.
    pub async fn task_status(&self, upid: &str) -> Result<TaskStatus, ProviderError> {
        let node = upid_node(upid).ok_or_else(|| {
            Failure::Invalid.error(&self.name, format!("{upid:?} is not a task id (UPID:NODE:...) bosun can follow"))
        })?;
        let mut url = http::join(&self.base, &format!("/api2/json/nodes/{node}/tasks"));
        // A UPID holds ':', '@' and '!': pushed as one segment, escaped where it must be.
        url.path_segments_mut()
            .map_err(|()| self.malformed("task status", "the base URL cannot take a path"))?
            .extend([upid, "status"]);
        let what = format!("GET task {upid}");
        let status: serde_json::Value = self.call(Method::GET, url, &what, None).await?;
        TaskStatus::read(&status).map_err(|problem| self.malformed(&what, problem))
    }

    /// Follows a task until it ends, reading its status up to `polling.max_polls` times,
    /// `polling.interval` apart. A task that ends with anything but `OK` (or Proxmox's
    /// `WARNINGS: N`, a success) is an error naming `what`, the UPID and its exit status;
    /// so is one still running after the last read.
    pub async fn wait_for_task(&self, upid: &str, what: &str, polling: TaskPolling) -> Result<(), ProviderError> {
        for poll in 0..polling.max_polls {
            if poll > 0 {
                tokio::time::sleep(polling.interval).await;
            }
            let status = self.task_status(upid).await?;
            if status.running {
                continue;
            }
            return match status.exit_status.as_deref() {
                Some(exit) if exit == "OK" || exit.starts_with("WARNINGS") => Ok(()),
                exit => Err(Failure::Unavailable.error(
                    &self.name,
                    format!("{what}: task {upid} failed: {}", exit.unwrap_or("it ended without an exit status")),
                )),
            };
        }
        Err(Failure::Unavailable.error(
            &self.name,
            format!(
                "{what}: task {upid} still runs after {} status reads {:?} apart; it may yet finish",
                polling.max_polls, polling.interval
            ),
        ))
    }

    fn check_node(&self, node: &str) -> Result<(), ProviderError> {
        if http::is_path_segment(node) {
            Ok(())
        } else {
            Err(Failure::Invalid.error(&self.name, format!("node name {node:?} cannot be part of a URL")))
        }
    }

    /// One read of the whole cluster: its resources, every guest's configuration (at most
    /// [`CONFIG_CONCURRENCY`] at a time) and each node's recent tasks. Any failed call
    /// fails the snapshot: nothing partial is returned.
    pub async fn snapshot(&self) -> Result<Snapshot, ProviderError> {
        use futures::stream::{self, StreamExt as _, TryStreamExt as _};
        let mut snapshot = self.cluster_resources().await?;
        // Owned requests: a stream of futures borrowing the snapshot's guests would make the
        // whole future's `Send` proof depend on higher-ranked lifetimes the compiler cannot
        // show, and a server could not run it on its worker threads.
        let wanted: Vec<(usize, bool, GuestKind, String, u32)> = snapshot
            .vms
            .iter()
            .enumerate()
            .map(|(i, g)| (i, true, g))
            .chain(snapshot.containers.iter().enumerate().map(|(i, g)| (i, false, g)))
            .map(|(i, vm, guest)| (i, vm, guest.kind, guest.node.clone(), guest.vmid))
            .collect();
        let configs: Vec<(usize, bool, GuestConfig)> =
            stream::iter(wanted.into_iter().map(|(i, vm, kind, node, vmid)| async move {
                self.guest_config(kind, &node, vmid).await.map(|config| (i, vm, config))
            }))
            .buffer_unordered(CONFIG_CONCURRENCY)
            .try_collect()
            .await?;
        for (index, vm, config) in configs {
            let guest = if vm { &mut snapshot.vms[index] } else { &mut snapshot.containers[index] };
            guest.config = Some(config);
        }
        let online: Vec<String> =
            snapshot.nodes.iter().filter(|n| n.status == "online").map(|n| n.name.clone()).collect();
        for node in online {
            snapshot.tasks.extend(self.node_tasks(&node, TASKS_PER_NODE).await?);
        }
        Ok(snapshot)
    }
}

/// The node of a task id, `UPID:NODE:PID:PSTART:STARTTIME:TYPE:ID:USER:`, when the id has
/// nothing that could address another resource.
fn upid_node(upid: &str) -> Option<&str> {
    let node = upid.strip_prefix("UPID:")?.split(':').next()?;
    let plain = upid.chars().all(|c| c.is_ascii_graphic() && !matches!(c, '/' | '?' | '#' | '%' | '\\'));
    (plain && http::is_path_segment(node)).then_some(node)
}

/// A token secret can travel in the `Authorization` header: visible ASCII, not empty.
fn is_header_safe(secret: &str) -> bool {
    !secret.is_empty() && secret.chars().all(|c| c.is_ascii_graphic())
}

/// The token secret from where the endpoint says it is, surrounding whitespace removed.
/// Errors say where it was looked for and what is wrong, never what was found.
fn read_secret(source: &SecretSource, env: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let value = match source {
        SecretSource::Env(variable) => env(variable).ok_or_else(|| format!("set {source} (token_secret_env)"))?,
        SecretSource::File(path) => {
            std::fs::read_to_string(path).map_err(|e| format!("cannot read {source} (token_secret_file): {e}"))?
        }
    };
    let secret = value.trim();
    if secret.is_empty() {
        return Err(format!("{source} is empty"));
    }
    if !is_header_safe(secret) {
        return Err(format!("{source} holds spaces or characters outside visible ASCII, which a header cannot carry"));
    }
    Ok(secret.to_owned())
}

#[cfg(test)]
mod tests;
