//! Drift from a declared inventory (`inventory.declaration`) against the Proxmox mock: a
//! declaration with each kind of drift (missing, unexpected, changed) gives a `drift`
//! change record and the `bosun_inventory_drift` gauges after the sync; a sync that
//! changes nothing writes no record; a change in the cluster that ends the drift gives a
//! record with an empty report.

use std::sync::Arc;
use std::time::Duration;

use bosun_api::v1;
use bosun_core::inventory::drift::DriftReport;
use bosun_provider::proxmox::mock::{MockCluster, MockSpec};
use bosun_store::Backend;

use crate::harness::*;
use crate::inventory::{proxmox_source, secret_file};

on_every_backend!(a_declaration_gives_drift_records_and_gauges_until_the_cluster_matches_it);

/// VMs 100 to 103 (`gpu-vm-0`...), containers 104 and 105 (`svc-0`, `svc-1`); all on
/// pve1 and pve2 in turn.
const DECLARATION: &str = "\
source: pve1
vms:
  - vmid: 100
    name: gpu-vm-0
    cpus: 16
    status: running
  - vmid: 101
    name: trainer
  - vmid: 102
  - vmid: 9000
    template: true
containers:
  - vmid: 104
    name: svc-0
  - name: svc-1
";

async fn drift_history(h: &Harness) -> Vec<v1::ChangeEvent> {
    let request = v1::ListEventsRequest {
        kind: "drift".to_owned(),
        resource_id: "declaration".to_owned(),
        limit: 100,
        ..Default::default()
    };
    h.admin(Some(OPERATOR)).list_events(request).await.expect("history").into_owned().events
}

/// The three `bosun_inventory_drift` gauges: missing, unexpected, changed (`None` when not
/// exported).
async fn gauges(h: &Harness) -> Option<[u64; 3]> {
    let text = h.get_text("/metrics").await;
    let value = |kind: &str| {
        let series = format!("bosun_inventory_drift{{kind=\"{kind}\"}} ");
        text.lines().find_map(|line| line.strip_prefix(&series)?.trim().parse().ok())
    };
    Some([value("missing")?, value("unexpected")?, value("changed")?])
}

async fn sync(h: &Harness) {
    assert_eq!(h.server().sync_inventory().await.expect("sync"), 1);
    h.clock.advance(Duration::from_secs(30));
}

async fn a_declaration_gives_drift_records_and_gauges_until_the_cluster_matches_it(backend: Backend) {
    let mock = MockCluster::generate(&MockSpec { nodes: 2, vms: 4, containers: 2, gpus_per_vm: 1, tasks_per_node: 0 });
    assert_eq!(mock.vmids(), [100, 101, 102, 103, 104, 105]);
    let url = mock.spawn().await.expect("mock");
    let secret = secret_file();
    let mut settings = settings();
    settings.inventory_sources = vec![proxmox_source(&url, &secret)];
    let declaration = bosun_config::declaration::parse(DECLARATION).expect("valid declaration");
    settings.inventory_declaration = Some(Arc::new(declaration));
    let Some(h) = Harness::start_with(backend, settings).await else { return };
    assert_eq!(gauges(&h).await, None, "not exported before the first check");

    // Each kind of drift: 9000 is missing, 103 unexpected, 101 renamed.
    sync(&h).await;
    let history = drift_history(&h).await;
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(
        (history[0].op.as_str(), history[0].revision, history[0].actor.as_str()),
        ("created", 1, "system:inventory")
    );
    assert_eq!(history[0].reason, "drift from the declared inventory: 1 missing, 1 unexpected, 1 changed");
    let report: DriftReport = serde_json::from_str(&history[0].resource_json).expect("a drift report");
    assert_eq!(
        report.lines(),
        [
            "missing vm pve1/9000",
            "unexpected vm pve1/103 (gpu-vm-3)",
            "changed vm pve1/101 (gpu-vm-1) name: declared trainer, actual gpu-vm-1",
        ]
    );
    assert_eq!(gauges(&h).await, Some([1, 1, 1]));

    // A sync that changes nothing writes no record.
    sync(&h).await;
    assert_eq!(drift_history(&h).await.len(), 1);

    // The cluster comes to match the declaration: a record with an empty report.
    assert!(mock.rename(101, "trainer") && mock.destroy(103));
    assert_eq!(mock.add_template("pve1"), 9000);
    sync(&h).await;
    let history = drift_history(&h).await;
    assert_eq!(history.len(), 2, "{history:?}");
    assert_eq!((history[1].op.as_str(), history[1].revision), ("updated", 2));
    let report: DriftReport = serde_json::from_str(&history[1].resource_json).expect("a drift report");
    assert!(report.is_empty(), "{report:?}");
    assert_eq!(gauges(&h).await, Some([0, 0, 0]));

    // Drifting again (a declared VM destroyed: gone counts as missing) is a new record.
    assert!(mock.destroy(102));
    sync(&h).await;
    let history = drift_history(&h).await;
    let report: DriftReport = serde_json::from_str(&history[2].resource_json).expect("a drift report");
    assert_eq!(report.lines(), ["missing vm pve1/102"]);
    assert_eq!(gauges(&h).await, Some([1, 0, 0]));
}
