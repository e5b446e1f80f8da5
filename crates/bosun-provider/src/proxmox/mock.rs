//! A Proxmox VE cluster in memory, serving the endpoints bosun calls, in Proxmox's JSON
//! shapes: `/cluster/resources`, each guest's `config` and each node's `tasks` (paged with
//! `start` and `limit`) for the inventory; `/cluster/nextid`, a VM's `clone`,
//! `status/start`, `status/stop` and `DELETE`, each answering a task's UPID, each task's
//! `status`, and a change of a VM's `tags` (`PUT config`) for the provider. The tests
//! drive it (a changed configuration, changed tags, a deleted VM, an outage, a slow or
//! malformed answer, a clone that fails, a full host, a refused configuration change), and
//! `bosun dev proxmox-mock` serves one so a newcomer can try bosun without a Proxmox at
//! hand.
//!
//! Every call must carry the cluster's API token, as Proxmox checks it: a missing or
//! wrong one is a 401. Refusals of the provider's calls are as Proxmox's: the message in
//! the HTTP reason phrase, `{"data":null}` as the body.
//!
//! A task's effect is applied when it is created (a clone exists, a VM runs) and the task
//! reads as running for [`MockCluster::set_task_polls`] status reads, then as stopped with
//! its exit status. A started VM's memory counts as used on its node.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MockSpec {
    pub nodes: u32,
    pub vms: u32,
    pub containers: u32,
    /// GPUs passed through to each VM.
    pub gpus_per_vm: u32,
    /// Finished tasks per node.
    pub tasks_per_node: u32,
}

impl Default for MockSpec {
    fn default() -> Self {
        Self { nodes: 3, vms: 12, containers: 24, gpus_per_vm: 1, tasks_per_node: 5 }
    }
}

/// The token every call must present.
pub const TOKEN_ID: &str = "bosun@pve!inventory";
pub const TOKEN_SECRET: &str = "5f0c1f52-6a5d-4c7e-9d3e-6f1e3c2b9a10";

/// The first vmid handed out, as Proxmox does.
const FIRST_VMID: u32 = 100;
/// Where [`MockCluster::add_template`] puts templates, apart from the generated guests.
const FIRST_TEMPLATE_VMID: u32 = 9000;
/// A template's memory and cores.
const TEMPLATE_MEMORY: u64 = 17_179_869_184;
const TEMPLATE_CORES: u32 = 8;

#[derive(Debug)]
struct Guest {
    kind: &'static str,
    node: String,
    resource: Value,
    config: Value,
}

#[derive(Debug, Default)]
struct Cluster {
    nodes: Vec<Value>,
    guests: BTreeMap<u32, Guest>,
    storage: Vec<Value>,
    tasks: BTreeMap<String, Vec<Value>>,
    /// Every call answers with this status (an API outage).
    outage: Option<u16>,
    /// Every call answers after this long.
    delay: Option<Duration>,
    /// `/cluster/resources` answers with a body that is not JSON.
    malformed: bool,
    /// Configuration changes so far, folded into digests.
    generation: u64,
    calls: u64,
    /// Tasks started through the API, by UPID.
    started: BTreeMap<String, Task>,
    /// Status reads a new task answers `running` to before it reads as stopped.
    task_polls: u32,
    /// Clone tasks end with this exit status and create nothing.
    clone_failure: Option<String>,
    /// Hosts listed with all memory and CPU in use.
    full_hosts: BTreeSet<String>,
    /// Configuration changes are refused, as to a token without `VM.Config.Options`.
    config_refused: bool,
}

/// A task started through the API.
#[derive(Debug)]
struct Task {
    node: String,
    kind: &'static str,
    target: u32,
    started: u64,
    /// Status reads left that answer `running`.
    running_reads: u32,
    exit_status: String,
    /// Whether a status read answered its end.
    followed: bool,
}

/// A task started through the API, as [`MockCluster::started_tasks`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartedTask {
    /// `qmclone`, `qmstart`, `qmstop`, `qmdestroy`.
    pub kind: &'static str,
    /// The vmid it acts on (for a clone: the template's).
    pub target: u32,
    pub exit_status: String,
    /// Whether a status read answered its end: the caller followed it to completion.
    pub followed: bool,
}

/// A generated cluster and the switches tests turn.
#[derive(Debug, Clone)]
pub struct MockCluster {
    cluster: Arc<Mutex<Cluster>>,
}

fn digest(vmid: u32, generation: u64) -> String {
    use sha2::Digest as _;
    let hash = sha2::Sha256::digest(format!("{vmid}/{generation}").as_bytes());
    crate::http::hex(&hash[..20])
}

impl MockCluster {
    /// A cluster of `spec.nodes` hypervisors (`pve1`, `pve2`...), VMs and containers spread
    /// over them in turn, a local and a shared storage, and some finished tasks.
    pub fn generate(spec: &MockSpec) -> Self {
        let mut cluster = Cluster::default();
        let nodes = spec.nodes.max(1);
        let node_name = |i: u32| format!("pve{}", i % nodes + 1);
        for i in 0..nodes {
            let name = node_name(i);
            cluster.nodes.push(json!({
                "id": format!("node/{name}"), "type": "node", "node": name, "status": "online",
                "cpu": 0.12, "maxcpu": 64, "mem": 68_719_476_736u64, "maxmem": 549_755_813_888u64,
                "uptime": 864_000, "level": "",
            }));
            cluster.storage.push(json!({
                "id": format!("storage/{name}/local-lvm"), "type": "storage", "node": name, "storage": "local-lvm",
                "plugintype": "lvmthin", "content": "images,rootdir", "shared": 0, "status": "available",
                "disk": 1_099_511_627_776u64, "maxdisk": 3_298_534_883_328u64,
            }));
            cluster.storage.push(json!({
                "id": format!("storage/{name}/ceph"), "type": "storage", "node": name, "storage": "ceph",
                "plugintype": "rbd", "content": "images", "shared": 1, "status": "available",
                "disk": 10_995_116_277_760u64, "maxdisk": 43_980_465_111_040u64,
            }));
            let tasks = (0..spec.tasks_per_node)
                .map(|t| {
                    let start = 1_767_225_600 + u64::from(t) * 60;
                    json!({
                        "upid": format!("UPID:{name}:0000{t:04X}:00{t:06X}:{start:08X}:vzdump::root@pam:"),
                        "node": name, "type": "vzdump", "user": "root@pam", "starttime": start,
                        "endtime": start + 30, "status": "OK",
                    })
                })
                .rev()
                .collect();
            cluster.tasks.insert(name, tasks);
        }
        // Guests are tagged as a team would: VMs `gpu` and either `training` or `inference`
        // (alternately), containers `infra`.
        let mut vmid = FIRST_VMID;
        for i in 0..spec.vms {
            let node = node_name(i);
            let tags = if i % 2 == 0 { "gpu;training" } else { "gpu;inference" };
            let mut config = json!({
                "name": format!("gpu-vm-{i}"), "cores": 16, "memory": "131072", "digest": digest(vmid, 0), "tags": tags,
            });
            for gpu in 0..spec.gpus_per_vm {
                config[format!("hostpci{gpu}")] = json!(format!("0000:{:02x}:00,pcie=1", 0x41 + gpu));
            }
            let resource = json!({
                "id": format!("qemu/{vmid}"), "type": "qemu", "node": node, "vmid": vmid,
                "name": format!("gpu-vm-{i}"), "status": "running", "template": 0, "maxcpu": 16, "cpu": 0.5,
                "mem": 68_719_476_736u64, "maxmem": 137_438_953_472u64, "disk": 0, "maxdisk": 214_748_364_800u64,
                "netin": 1_000_000, "netout": 2_000_000, "uptime": 3600, "hastate": if i % 4 == 0 { "started" } else { "" },
                "tags": tags,
            });
            cluster.guests.insert(vmid, Guest { kind: "qemu", node, resource, config });
            vmid += 1;
        }
        for i in 0..spec.containers {
            let node = node_name(i);
            let config = json!({
                "hostname": format!("svc-{i}"), "ostype": "ubuntu", "cores": 2, "memory": 4096, "swap": 512,
                "digest": digest(vmid, 0), "tags": "infra",
            });
            let resource = json!({
                "id": format!("lxc/{vmid}"), "type": "lxc", "node": node, "vmid": vmid, "name": format!("svc-{i}"),
                "status": if i % 5 == 4 { "stopped" } else { "running" }, "template": 0, "maxcpu": 2, "cpu": 0.01,
                "mem": 536_870_912u64, "maxmem": 4_294_967_296u64, "disk": 1_073_741_824u64,
                "maxdisk": 8_589_934_592u64, "netin": 1000, "netout": 1000, "uptime": 7200, "tags": "infra",
            });
            cluster.guests.insert(vmid, Guest { kind: "lxc", node, resource, config });
            vmid += 1;
        }
        cluster.task_polls = 1;
        Self { cluster: Arc::new(Mutex::new(cluster)) }
    }

    /// Adds a stopped template VM on `node` (16 GiB, 8 cores, a GPU given through the
    /// resource mapping `gpu`) at the first free vmid from 9000; returns its vmid.
    pub fn add_template(&self, node: &str) -> u32 {
        let mut cluster = self.lock();
        let vmid = (FIRST_TEMPLATE_VMID..).find(|id| !cluster.guests.contains_key(id)).unwrap_or(FIRST_TEMPLATE_VMID);
        let name = format!("gpu-template-{vmid}");
        let config = json!({
            "name": name, "cores": TEMPLATE_CORES, "memory": (TEMPLATE_MEMORY >> 20).to_string(),
            "hostpci0": "mapping=gpu,pcie=1", "template": 1, "digest": digest(vmid, 0),
        });
        let resource = json!({
            "id": format!("qemu/{vmid}"), "type": "qemu", "node": node, "vmid": vmid, "name": name,
            "status": "stopped", "template": 1, "maxcpu": TEMPLATE_CORES, "cpu": 0, "mem": 0,
            "maxmem": TEMPLATE_MEMORY, "disk": 0, "maxdisk": 34_359_738_368u64, "netin": 0, "netout": 0, "uptime": 0,
        });
        cluster.guests.insert(vmid, Guest { kind: "qemu", node: node.to_owned(), resource, config });
        vmid
    }

    /// Lists a task of `kind` on `target` first in `node`'s tasks, running until
    /// [`MockCluster::end_task`] ends it (or ended at once with `exit_status`). Returns its
    /// UPID.
    pub fn push_task(&self, node: &str, kind: &str, target: u32, exit_status: Option<&str>) -> String {
        let mut cluster = self.lock();
        let listed: usize = cluster.tasks.values().map(Vec::len).sum();
        let start = 1_767_300_000 + listed as u64 * 60;
        let upid = format!("UPID:{node}:{listed:08X}:{listed:08X}:{start:08X}:{kind}:{target}:root@pam:");
        let mut row = json!({
            "upid": upid, "node": node, "type": kind, "id": target.to_string(), "user": "root@pam",
            "starttime": start,
        });
        if let Some(status) = exit_status {
            row["endtime"] = json!(start + 30);
            row["status"] = json!(status);
        }
        cluster.tasks.entry(node.to_owned()).or_default().insert(0, row);
        upid
    }

    /// Ends the listed task `upid` with `exit_status`; false when no task has that UPID.
    pub fn end_task(&self, upid: &str, exit_status: &str) -> bool {
        let mut cluster = self.lock();
        let Some(row) = cluster.tasks.values_mut().flatten().find(|row| row["upid"] == upid) else { return false };
        row["endtime"] = json!(row["starttime"].as_u64().unwrap_or_default() + 45);
        row["status"] = json!(exit_status);
        true
    }

    /// Clone tasks end with `exit_status` (and create nothing) until called with `None`.
    pub fn fail_clones(&self, exit_status: Option<&str>) {
        self.lock().clone_failure = exit_status.map(str::to_owned);
    }

    /// Lists `node` with all its memory and CPU in use (`full`), or as it is.
    pub fn set_host_full(&self, node: &str, full: bool) {
        let mut cluster = self.lock();
        if full {
            cluster.full_hosts.insert(node.to_owned());
        } else {
            cluster.full_hosts.remove(node);
        }
    }

    /// Refuses configuration changes (tags), as Proxmox does to a token without the
    /// permission, until called with `false`.
    pub fn refuse_config_changes(&self, refused: bool) {
        self.lock().config_refused = refused;
    }

    /// How many status reads a new task answers `running` to before it ends (1 at first).
    pub fn set_task_polls(&self, polls: u32) {
        self.lock().task_polls = polls;
    }

    /// A guest's node and status (`running`, `stopped`), if it exists.
    pub fn guest(&self, vmid: u32) -> Option<(String, String)> {
        let cluster = self.lock();
        let guest = cluster.guests.get(&vmid)?;
        Some((guest.node.clone(), guest.resource["status"].as_str().unwrap_or_default().to_owned()))
    }

    /// The tasks started through the API so far, oldest first.
    pub fn started_tasks(&self) -> Vec<StartedTask> {
        let cluster = self.lock();
        let mut tasks: Vec<(u64, StartedTask)> = cluster
            .started
            .values()
            .map(|task| {
                let listed = StartedTask {
                    kind: task.kind,
                    target: task.target,
                    exit_status: task.exit_status.clone(),
                    followed: task.followed,
                };
                (task.started, listed)
            })
            .collect();
        tasks.sort_by_key(|(started, _)| *started);
        tasks.into_iter().map(|(_, task)| task).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cluster> {
        self.cluster.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The guests' vmids, VMs first.
    pub fn vmids(&self) -> Vec<u32> {
        self.lock().guests.keys().copied().collect()
    }

    /// Changes a guest's configuration (its digest changes, as Proxmox's does). False when
    /// there is no such guest.
    pub fn reconfigure(&self, vmid: u32) -> bool {
        let mut cluster = self.lock();
        cluster.generation += 1;
        let generation = cluster.generation;
        let Some(guest) = cluster.guests.get_mut(&vmid) else { return false };
        guest.config["digest"] = json!(digest(vmid, generation));
        guest.config["description"] = json!(format!("changed ({generation})"));
        true
    }

    /// Replaces a guest's tags (`gpu;training`), as a `PUT config` with `tags` does: its
    /// configuration's digest changes. False when there is no such guest.
    pub fn set_tags(&self, vmid: u32, tags: &str) -> bool {
        self.lock().retag(vmid, tags)
    }

    /// Renames a guest as `/cluster/resources` lists it (any text, to test what a reader
    /// does with odd names). False when there is no such guest.
    pub fn rename(&self, vmid: u32, name: &str) -> bool {
        let mut cluster = self.lock();
        let Some(guest) = cluster.guests.get_mut(&vmid) else { return false };
        guest.resource["name"] = json!(name);
        true
    }

    /// Destroys a guest. False when there is no such guest.
    pub fn destroy(&self, vmid: u32) -> bool {
        self.lock().guests.remove(&vmid).is_some()
    }

    /// Every call answers `status` until called again with `None`.
    pub fn set_outage(&self, status: Option<u16>) {
        self.lock().outage = status;
    }

    /// Every call answers only after `delay`.
    pub fn set_delay(&self, delay: Option<Duration>) {
        self.lock().delay = delay;
    }

    /// `/cluster/resources` answers with a body that is not JSON.
    pub fn set_malformed(&self, malformed: bool) {
        self.lock().malformed = malformed;
    }

    /// Calls answered so far.
    pub fn calls(&self) -> u64 {
        self.lock().calls
    }

    /// The API's routes.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/api2/json/cluster/resources", get(resources))
            .route("/api2/json/nodes/{node}/{kind}/{vmid}/config", get(config).put(set_config))
            .route("/api2/json/nodes/{node}/tasks", get(tasks))
            .route("/api2/json/cluster/nextid", get(next_id))
            .route("/api2/json/nodes/{node}/{kind}/{vmid}/clone", post(clone))
            .route("/api2/json/nodes/{node}/{kind}/{vmid}/status/{action}", post(power))
            .route("/api2/json/nodes/{node}/{kind}/{vmid}", axum::routing::delete(destroy))
            .route("/api2/json/nodes/{node}/tasks/{upid}/status", get(task_status))
            .with_state(self.clone())
    }

    /// Serves the API on `listener` until the future is dropped.
    pub async fn serve(&self, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        axum::serve(listener, self.router()).await
    }

    /// Serves the API on a free loopback port; returns its base URL.
    pub async fn spawn(&self) -> std::io::Result<String> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let server = self.clone();
        tokio::spawn(async move { server.serve(listener).await });
        Ok(url)
    }

    /// Checks the token and the switches every call goes through; `Err` is the answer.
    async fn admit(&self, headers: &HeaderMap) -> Result<(), Response> {
        let (outage, delay) = {
            let mut cluster = self.lock();
            cluster.calls += 1;
            (cluster.outage, cluster.delay)
        };
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        let expected = format!("PVEAPIToken={TOKEN_ID}={TOKEN_SECRET}");
        if headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
            return Err(answer(StatusCode::UNAUTHORIZED, json!({"data": null, "message": "authentication failure"})));
        }
        if let Some(status) = outage {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            return Err(answer(status, json!({"data": null, "message": "the cluster is not available"})));
        }
        Ok(())
    }
}

fn answer(status: StatusCode, body: Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json;charset=UTF-8")], body.to_string()).into_response()
}

async fn resources(State(mock): State<MockCluster>, headers: HeaderMap) -> Response {
    if let Err(refused) = mock.admit(&headers).await {
        return refused;
    }
    let cluster = mock.lock();
    if cluster.malformed {
        return (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], "{\"data\": [{\"id\": ").into_response();
    }
    let nodes: Vec<Value> = cluster
        .nodes
        .iter()
        .map(|node| {
            let mut node = node.clone();
            if node["node"].as_str().is_some_and(|name| cluster.full_hosts.contains(name)) {
                node["mem"] = node["maxmem"].clone();
                node["cpu"] = json!(1.0);
            }
            node
        })
        .collect();
    let rows: Vec<&Value> =
        nodes.iter().chain(cluster.guests.values().map(|g| &g.resource)).chain(cluster.storage.iter()).collect();
    answer(StatusCode::OK, json!({ "data": rows }))
}

async fn config(
    State(mock): State<MockCluster>,
    Path((node, kind, vmid)): Path<(String, String, u32)>,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = mock.admit(&headers).await {
        return refused;
    }
    let cluster = mock.lock();
    match cluster.guests.get(&vmid) {
        Some(guest) if guest.node == node && guest.kind == kind => {
            answer(StatusCode::OK, json!({ "data": guest.config }))
        }
        _ => answer(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"data": null, "message": format!("Configuration file 'nodes/{node}/{kind}/{vmid}.conf' does not exist")}),
        ),
    }
}

async fn tasks(State(mock): State<MockCluster>, Path(node): Path<String>, uri: Uri, headers: HeaderMap) -> Response {
    if let Err(refused) = mock.admit(&headers).await {
        return refused;
    }
    let query: BTreeMap<String, String> =
        url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes()).into_owned().collect();
    let number = |key: &str, default: usize| query.get(key).and_then(|v| v.parse().ok()).unwrap_or(default);
    let (start, limit) = (number("start", 0), number("limit", 50));
    let cluster = mock.lock();
    let Some(tasks) = cluster.tasks.get(&node) else {
        return answer(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"data": null, "message": format!("no such node '{node}'")}),
        );
    };
    let page: Vec<&Value> = tasks.iter().skip(start).take(limit).collect();
    answer(StatusCode::OK, json!({ "data": page, "total": tasks.len() }))
}

/// A refusal as Proxmox words it: the message as the HTTP reason phrase, no data.
fn refusal(status: StatusCode, message: &str) -> Response {
    let mut response = answer(status, json!({ "data": null }));
    if let Ok(reason) = hyper::ext::ReasonPhrase::try_from(message.as_bytes().to_vec()) {
        response.extensions_mut().insert(reason);
    }
    response
}

fn no_such_guest(node: &str, kind: &str, vmid: u32) -> Response {
    refusal(
        StatusCode::INTERNAL_SERVER_ERROR,
        &format!("Configuration file 'nodes/{node}/{kind}/{vmid}.conf' does not exist"),
    )
}

/// A request's form parameters.
fn form(body: &str) -> BTreeMap<String, String> {
    url::form_urlencoded::parse(body.as_bytes()).into_owned().collect()
}

impl Cluster {
    /// Starts a task on `node`; returns its UPID.
    fn task(&mut self, node: &str, kind: &'static str, target: u32, exit_status: &str) -> String {
        let started = 1_767_225_600 + self.started.len() as u64;
        let pid = 0x1000 + self.started.len();
        let upid = format!("UPID:{node}:{pid:08X}:{pid:08X}:{started:08X}:{kind}:{target}:{TOKEN_ID}:");
        let task = Task {
            node: node.to_owned(),
            kind,
            target,
            started,
            running_reads: self.task_polls,
            exit_status: exit_status.to_owned(),
            followed: false,
        };
        self.started.insert(upid.clone(), task);
        upid
    }

    /// Replaces guest `vmid`'s tags where Proxmox keeps them (its configuration, which
    /// `/cluster/resources` reflects) and changes its configuration's digest.
    fn retag(&mut self, vmid: u32, tags: &str) -> bool {
        self.generation += 1;
        let generation = self.generation;
        let Some(guest) = self.guests.get_mut(&vmid) else { return false };
        guest.resource["tags"] = json!(tags);
        guest.config["tags"] = json!(tags);
        guest.config["digest"] = json!(digest(vmid, generation));
        true
    }

    /// The guest `vmid` if it is a VM on `node`.
    fn vm_on(&mut self, node: &str, kind: &str, vmid: u32) -> Option<&mut Guest> {
        self.guests.get_mut(&vmid).filter(|guest| guest.node == node && guest.kind == kind && kind == "qemu")
    }

    /// Counts `bytes` more (or fewer) of `node`'s memory as used.
    fn use_memory(&mut self, node: &str, bytes: u64, more: bool) {
        if let Some(row) = self.nodes.iter_mut().find(|row| row["node"] == node) {
            let used = row["mem"].as_u64().unwrap_or_default();
            row["mem"] = json!(if more { used.saturating_add(bytes) } else { used.saturating_sub(bytes) });
        }
    }
}

async fn next_id(State(mock): State<MockCluster>, headers: HeaderMap) -> Response {
    if let Err(refused) = mock.admit(&headers).await {
        return refused;
    }
    let cluster = mock.lock();
    let free = (FIRST_VMID..).find(|id| !cluster.guests.contains_key(id)).unwrap_or(FIRST_VMID);
    answer(StatusCode::OK, json!({ "data": free.to_string() }))
}

async fn clone(
    State(mock): State<MockCluster>,
    Path((node, kind, vmid)): Path<(String, String, u32)>,
    headers: HeaderMap,
    body: String,
) -> Response {
    if let Err(refused) = mock.admit(&headers).await {
        return refused;
    }
    let params = form(&body);
    let mut cluster = mock.lock();
    let Some(source) = cluster.vm_on(&node, &kind, vmid) else { return no_such_guest(&node, &kind, vmid) };
    let (mut resource, mut config) = (source.resource.clone(), source.config.clone());
    let Some(newid) = params.get("newid").and_then(|id| id.parse::<u32>().ok()).filter(|id| *id >= FIRST_VMID) else {
        return answer(
            StatusCode::BAD_REQUEST,
            json!({"data": null, "errors": {"newid": "property is missing or not a vmid"}}),
        );
    };
    if cluster.guests.contains_key(&newid) {
        return refusal(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("unable to create VM {newid}: config file already exists"),
        );
    }
    let target = params.get("target").cloned().unwrap_or_else(|| node.clone());
    if !cluster.tasks.contains_key(&target) {
        return refusal(StatusCode::INTERNAL_SERVER_ERROR, &format!("no such cluster node '{target}'"));
    }
    if let Some(storage) = params.get("storage") {
        let known =
            cluster.storage.iter().any(|row| row["node"] == target.as_str() && row["storage"] == storage.as_str());
        if !known {
            return refusal(StatusCode::INTERNAL_SERVER_ERROR, &format!("storage '{storage}' does not exist"));
        }
    }
    if let Some(failure) = cluster.clone_failure.clone() {
        return answer(StatusCode::OK, json!({ "data": cluster.task(&node, "qmclone", vmid, &failure) }));
    }
    let name = params.get("name").cloned().unwrap_or_else(|| format!("Copy-of-VM-{vmid}"));
    for (key, value) in [("id", json!(format!("qemu/{newid}"))), ("vmid", json!(newid)), ("name", json!(name))] {
        resource[key] = value;
    }
    for (key, value) in [("node", json!(target)), ("status", json!("stopped")), ("template", json!(0))] {
        resource[key] = value;
    }
    config["name"] = json!(name);
    config["digest"] = json!(digest(newid, cluster.generation));
    if let Some(object) = config.as_object_mut() {
        object.remove("template");
    }
    if let Some(description) = params.get("description") {
        config["description"] = json!(description);
    }
    cluster.guests.insert(newid, Guest { kind: "qemu", node: target, resource, config });
    answer(StatusCode::OK, json!({ "data": cluster.task(&node, "qmclone", vmid, "OK") }))
}

async fn power(
    State(mock): State<MockCluster>,
    Path((node, kind, vmid, action)): Path<(String, String, u32, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = mock.admit(&headers).await {
        return refused;
    }
    let mut cluster = mock.lock();
    let Some(guest) = cluster.vm_on(&node, &kind, vmid) else { return no_such_guest(&node, &kind, vmid) };
    let (running, memory) = (guest.resource["status"] == "running", guest.resource["maxmem"].as_u64().unwrap_or(0));
    let upid = match action.as_str() {
        "start" if running => cluster.task(&node, "qmstart", vmid, &format!("VM {vmid} already running")),
        "start" => {
            guest.resource["status"] = json!("running");
            guest.resource["uptime"] = json!(1);
            cluster.use_memory(&node, memory, true);
            cluster.task(&node, "qmstart", vmid, "OK")
        }
        "stop" => {
            guest.resource["status"] = json!("stopped");
            guest.resource["uptime"] = json!(0);
            if running {
                cluster.use_memory(&node, memory, false);
            }
            cluster.task(&node, "qmstop", vmid, "OK")
        }
        other => {
            return refusal(
                StatusCode::NOT_IMPLEMENTED,
                &format!("Method 'POST /nodes/{node}/{kind}/{vmid}/status/{other}' not implemented"),
            );
        }
    };
    answer(StatusCode::OK, json!({ "data": upid }))
}

async fn destroy(
    State(mock): State<MockCluster>,
    Path((node, kind, vmid)): Path<(String, String, u32)>,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = mock.admit(&headers).await {
        return refused;
    }
    let mut cluster = mock.lock();
    let Some(guest) = cluster.vm_on(&node, &kind, vmid) else { return no_such_guest(&node, &kind, vmid) };
    if guest.resource["status"] == "running" {
        return refusal(StatusCode::INTERNAL_SERVER_ERROR, &format!("VM {vmid} is running - destroy failed"));
    }
    cluster.guests.remove(&vmid);
    answer(StatusCode::OK, json!({ "data": cluster.task(&node, "qmdestroy", vmid, "OK") }))
}

async fn set_config(
    State(mock): State<MockCluster>,
    Path((node, kind, vmid)): Path<(String, String, u32)>,
    headers: HeaderMap,
    body: String,
) -> Response {
    if let Err(refused) = mock.admit(&headers).await {
        return refused;
    }
    let params = form(&body);
    let mut cluster = mock.lock();
    if cluster.config_refused {
        return refusal(StatusCode::FORBIDDEN, &format!("Permission check failed (/vms/{vmid}, VM.Config.Options)"));
    }
    if cluster.vm_on(&node, &kind, vmid).is_none() {
        return no_such_guest(&node, &kind, vmid);
    }
    match params.get("tags") {
        Some(tags) => {
            cluster.retag(vmid, tags);
        }
        None => {
            cluster.generation += 1;
            let generation = cluster.generation;
            if let Some(guest) = cluster.guests.get_mut(&vmid) {
                guest.config["digest"] = json!(digest(vmid, generation));
            }
        }
    }
    answer(StatusCode::OK, json!({ "data": null }))
}

async fn task_status(
    State(mock): State<MockCluster>,
    Path((node, upid)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = mock.admit(&headers).await {
        return refused;
    }
    let mut cluster = mock.lock();
    let Some(task) = cluster.started.get_mut(&upid).filter(|task| task.node == node) else {
        return refusal(StatusCode::INTERNAL_SERVER_ERROR, &format!("no such task '{upid}'"));
    };
    let mut status = json!({
        "upid": upid, "node": task.node, "type": task.kind, "id": task.target.to_string(), "user": TOKEN_ID,
        "starttime": task.started, "status": "running",
    });
    if task.running_reads > 0 {
        task.running_reads -= 1;
    } else {
        status["status"] = json!("stopped");
        status["exitstatus"] = json!(task.exit_status);
        task.followed = true;
    }
    answer(StatusCode::OK, json!({ "data": status }))
}
