//! Drift: how the synced inventory differs from a declaration of what should be there.
//!
//! A [`Declaration`] lists VMs and containers, each known by its source and vmid (or by
//! its name when it has no vmid), with only the fields that matter to whoever wrote it.
//! [`compare`] sets it beside the present records of the sources it names and says what
//! is **missing** (declared, not there or gone), **unexpected** (there, not declared) and
//! **changed** (there, with a declared field of another value), one entry per field.
//!
//! Which records a declaration speaks for: of each kind it lists (`vms`, `containers`;
//! an empty list counts, and says there should be none), the records of its default
//! source and of every source an entry of that kind names. Templates are left out of the
//! unexpected ones unless the declaration declares a template (`template: true`) of that
//! kind in that source: most declarations describe the guests that run, not the images
//! they are cloned from.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Container, InventoryKind, InventoryRecord, RecordState, Vm, record_id};
use crate::SourceName;
use crate::size::format_bytes;

/// What a declared resource is known by in its source.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Identity {
    /// Proxmox's vmid: the record's key.
    Vmid(u32),
    /// Its name, for a resource declared without a vmid. When several present records
    /// have it, the one with the lowest vmid is the declared one.
    Name(String),
}

/// One declared resource: where it is, what it is known by, and the fields that matter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declared<F> {
    pub source: SourceName,
    pub identity: Identity,
    pub expect: F,
}

/// A VM's declared fields; `None` is not compared. The name is a field only when the VM is
/// declared by vmid.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VmFields {
    pub name: Option<String>,
    pub host: Option<String>,
    pub status: Option<String>,
    pub template: Option<bool>,
    pub cpus: Option<u32>,
    pub memory_total: Option<u64>,
    pub disk_total: Option<u64>,
    pub ha_managed: Option<bool>,
    /// Compared as a set: the order Proxmox lists passthrough devices in means nothing.
    pub gpu_devices: Option<Vec<String>>,
}

/// A container's declared fields; `None` is not compared.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerFields {
    pub name: Option<String>,
    pub host: Option<String>,
    pub status: Option<String>,
    pub template: Option<bool>,
    pub os_template: Option<String>,
    pub hostname: Option<String>,
    pub cpus: Option<u32>,
    pub memory_total: Option<u64>,
    pub disk_total: Option<u64>,
    pub ha_managed: Option<bool>,
}

/// The inventory as it should be (read from a file by `bosun_config::declaration`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Declaration {
    /// The source of entries that name none.
    pub default_source: Option<SourceName>,
    /// `None` when the declaration says nothing of VMs (they are not compared at all).
    pub vms: Option<Vec<Declared<VmFields>>>,
    /// `None` when the declaration says nothing of containers.
    pub containers: Option<Vec<Declared<ContainerFields>>>,
}

impl Declaration {
    /// The sources whose records of `kind` the declaration speaks for (none for a kind it
    /// does not list).
    pub fn scope(&self, kind: InventoryKind) -> BTreeSet<SourceName> {
        let entries: Option<Vec<&SourceName>> = match kind {
            InventoryKind::Vm => self.vms.as_ref().map(|v| v.iter().map(|d| &d.source).collect()),
            InventoryKind::Container => self.containers.as_ref().map(|c| c.iter().map(|d| &d.source).collect()),
            _ => None,
        };
        let Some(entries) = entries else { return BTreeSet::new() };
        entries.into_iter().cloned().chain(self.default_source.clone()).collect()
    }

    /// Every source it speaks for, of any kind.
    pub fn sources(&self) -> BTreeSet<SourceName> {
        let mut sources = self.scope(InventoryKind::Vm);
        sources.extend(self.scope(InventoryKind::Container));
        sources
    }

    /// The kinds it lists.
    pub fn kinds(&self) -> Vec<InventoryKind> {
        let mut kinds = Vec::new();
        if self.vms.is_some() {
            kinds.push(InventoryKind::Vm);
        }
        if self.containers.is_some() {
            kinds.push(InventoryKind::Container);
        }
        kinds
    }
}

/// A declared resource that is not there (never synced, or gone from its source).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Missing {
    pub kind: InventoryKind,
    pub source: SourceName,
    pub vmid: Option<u32>,
    pub name: Option<String>,
}

/// A present record of a declared source and kind that nothing declares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unexpected {
    pub kind: InventoryKind,
    /// `SOURCE/KEY`, as the CLI and the change log name records.
    pub id: String,
    pub name: String,
}

/// One declared field whose synced value differs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Changed {
    pub kind: InventoryKind,
    pub id: String,
    pub name: String,
    /// The field as the record's JSON document names it (`cpus`, `memory_total`...).
    pub field: String,
    pub declared: Value,
    pub actual: Value,
}

/// How many resources drift, by kind of drift.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DriftCounts {
    pub missing: u64,
    pub unexpected: u64,
    /// Resources with at least one changed field (not fields).
    pub changed: u64,
}

/// Everything that differs, each list in a fixed order (kind, source, vmid, then key or
/// name; changed fields in declaration order), so equal inventories give equal reports.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct DriftReport {
    pub missing: Vec<Missing>,
    pub unexpected: Vec<Unexpected>,
    pub changed: Vec<Changed>,
}

impl DriftReport {
    /// No drift.
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.unexpected.is_empty() && self.changed.is_empty()
    }

    pub fn counts(&self) -> DriftCounts {
        let changed: BTreeSet<(InventoryKind, &str)> = self.changed.iter().map(|c| (c.kind, c.id.as_str())).collect();
        DriftCounts {
            missing: self.missing.len() as u64,
            unexpected: self.unexpected.len() as u64,
            changed: changed.len() as u64,
        }
    }

    /// One line per difference, as `bosun inventory diff` prints them.
    pub fn lines(&self) -> Vec<String> {
        let missing = self.missing.iter().map(ToString::to_string);
        let unexpected = self.unexpected.iter().map(ToString::to_string);
        missing.chain(unexpected).chain(self.changed.iter().map(ToString::to_string)).collect()
    }
}

/// `vm pve1/104 (train-01)`, or without the name when it is not known.
fn write_resource(f: &mut fmt::Formatter<'_>, kind: InventoryKind, id: &str, name: Option<&str>) -> fmt::Result {
    write!(f, "{kind} {id}")?;
    match name {
        Some(name) if !name.is_empty() => write!(f, " ({name})"),
        _ => Ok(()),
    }
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("missing ")?;
        match self.vmid {
            Some(vmid) => {
                write_resource(f, self.kind, &record_id(&self.source, &vmid.to_string()), self.name.as_deref())
            }
            None => write!(f, "{} named {} in {}", self.kind, self.name.as_deref().unwrap_or_default(), self.source),
        }
    }
}

impl fmt::Display for Unexpected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("unexpected ")?;
        write_resource(f, self.kind, &self.id, Some(&self.name))
    }
}

impl fmt::Display for Changed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("changed ")?;
        write_resource(f, self.kind, &self.id, Some(&self.name))?;
        let sized = matches!(self.field.as_str(), "memory_total" | "disk_total");
        write!(f, " {}: declared {}, actual {}", self.field, show(&self.declared, sized), show(&self.actual, sized))
    }
}

/// A value in a line of text: strings bare (quoted when empty), sizes in binary units.
fn show(value: &Value, sized: bool) -> String {
    match value {
        Value::String(text) if text.is_empty() => "\"\"".to_owned(),
        Value::String(text) => text.clone(),
        Value::Null => "none".to_owned(),
        Value::Number(n) if sized => n.as_u64().map_or_else(|| n.to_string(), format_bytes),
        other => other.to_string(),
    }
}

/// Collects the fields of one record that differ from what was declared.
struct FieldDiffs(Vec<(&'static str, Value, Value)>);

impl FieldDiffs {
    fn compare<T: PartialEq + Serialize>(&mut self, field: &'static str, declared: Option<&T>, actual: &T) {
        if let Some(declared) = declared
            && declared != actual
        {
            self.0.push((field, json(declared), json(actual)));
        }
    }

    /// A field the record may lack (`None`): declared, it must be there and equal.
    fn compare_optional(&mut self, field: &'static str, declared: Option<&String>, actual: Option<&String>) {
        if let Some(declared) = declared
            && Some(declared) != actual
        {
            self.0.push((field, json(declared), json(&actual)));
        }
    }
}

fn json<T: Serialize + ?Sized>(value: &T) -> Value {
    // Strings, numbers, booleans and lists of strings always serialize.
    serde_json::to_value(value).unwrap_or(Value::Null)
}

impl VmFields {
    fn diff(&self, vm: &Vm) -> FieldDiffs {
        let mut diffs = FieldDiffs(Vec::new());
        diffs.compare("name", self.name.as_ref(), &vm.name);
        diffs.compare("host", self.host.as_ref(), &vm.host);
        diffs.compare("status", self.status.as_ref(), &vm.status);
        diffs.compare("template", self.template.as_ref(), &vm.template);
        diffs.compare("cpus", self.cpus.as_ref(), &vm.cpus);
        diffs.compare("memory_total", self.memory_total.as_ref(), &vm.memory_total);
        diffs.compare("disk_total", self.disk_total.as_ref(), &vm.disk_total);
        diffs.compare("ha_managed", self.ha_managed.as_ref(), &vm.ha_managed);
        if let Some(declared) = &self.gpu_devices {
            let sorted = |devices: &[String]| -> Vec<String> {
                let mut devices = devices.to_vec();
                devices.sort();
                devices
            };
            diffs.compare("gpu_devices", Some(&sorted(declared)), &sorted(&vm.gpu_devices));
        }
        diffs
    }
}

impl ContainerFields {
    fn diff(&self, container: &Container) -> FieldDiffs {
        let mut diffs = FieldDiffs(Vec::new());
        diffs.compare("name", self.name.as_ref(), &container.name);
        diffs.compare("host", self.host.as_ref(), &container.host);
        diffs.compare("status", self.status.as_ref(), &container.status);
        diffs.compare("template", self.template.as_ref(), &container.template);
        diffs.compare_optional("os_template", self.os_template.as_ref(), container.os_template.as_ref());
        diffs.compare_optional("hostname", self.hostname.as_ref(), container.hostname.as_ref());
        diffs.compare("cpus", self.cpus.as_ref(), &container.cpus);
        diffs.compare("memory_total", self.memory_total.as_ref(), &container.memory_total);
        diffs.compare("disk_total", self.disk_total.as_ref(), &container.disk_total);
        diffs.compare("ha_managed", self.ha_managed.as_ref(), &container.ha_managed);
        diffs
    }
}

/// A present VM or container record, as matching sees it.
struct Guest<'r> {
    record: &'r InventoryRecord,
    vmid: Option<u32>,
    template: bool,
}

impl Guest<'_> {
    /// The order reports list records in: by vmid, then key.
    fn order(&self) -> (Option<u32>, &str) {
        (self.vmid, &self.record.key)
    }
}

/// Compares `declaration` with `records`, the synced VM and container records of the
/// sources it names (others, gone ones and other kinds are ignored, so a caller may pass
/// more). Pure: the same inputs give the same report.
pub fn compare(declaration: &Declaration, records: &[InventoryRecord]) -> DriftReport {
    let mut report = DriftReport::default();
    if let Some(vms) = &declaration.vms {
        compare_kind(declaration, InventoryKind::Vm, vms, records, &mut report, |fields, record| match &record.state {
            RecordState::Vm(vm) => Some(fields.diff(vm)),
            _ => None,
        });
    }
    if let Some(containers) = &declaration.containers {
        compare_kind(declaration, InventoryKind::Container, containers, records, &mut report, |fields, record| {
            match &record.state {
                RecordState::Container(container) => Some(fields.diff(container)),
                _ => None,
            }
        });
    }
    report
}

/// What [`compare_kind`] needs of a kind's declared fields.
trait Expectation {
    fn template(&self) -> Option<bool>;
    fn name(&self) -> Option<&String>;
}

impl Expectation for VmFields {
    fn template(&self) -> Option<bool> {
        self.template
    }
    fn name(&self) -> Option<&String> {
        self.name.as_ref()
    }
}

impl Expectation for ContainerFields {
    fn template(&self) -> Option<bool> {
        self.template
    }
    fn name(&self) -> Option<&String> {
        self.name.as_ref()
    }
}

/// Where a record comes in a report: source, vmid, key.
type RecordOrder<'r> = (&'r SourceName, Option<u32>, &'r str);

fn compare_kind<F: Expectation>(
    declaration: &Declaration,
    kind: InventoryKind,
    declared: &[Declared<F>],
    records: &[InventoryRecord],
    report: &mut DriftReport,
    diff: impl Fn(&F, &InventoryRecord) -> Option<FieldDiffs>,
) {
    let scope = declaration.scope(kind);
    // The present records of this kind in scope, per source, in report order.
    let mut present: BTreeMap<&SourceName, Vec<Guest<'_>>> = BTreeMap::new();
    for record in records {
        if record.kind() != kind || record.gone_at.is_some() || !scope.contains(&record.source) {
            continue;
        }
        let (vmid, template) = match &record.state {
            RecordState::Vm(vm) => (Some(vm.vmid), vm.template),
            RecordState::Container(c) => (c.vmid, c.template),
            _ => continue,
        };
        present.entry(&record.source).or_default().push(Guest { record, vmid, template });
    }
    for guests in present.values_mut() {
        guests.sort_by(|a, b| a.order().cmp(&b.order()));
    }
    // Declared entries in report order: by source, vmids before names.
    let mut entries: Vec<&Declared<F>> = declared.iter().collect();
    entries.sort_by(|a, b| (&a.source, &a.identity).cmp(&(&b.source, &b.identity)));

    let mut claimed: BTreeSet<(&SourceName, usize)> = BTreeSet::new();
    // Keyed by the record's place in report order (one record per key).
    let mut changed: BTreeMap<RecordOrder<'_>, Vec<Changed>> = BTreeMap::new();
    for entry in entries {
        let guests = present.get(&entry.source).map(Vec::as_slice).unwrap_or_default();
        let found = guests.iter().enumerate().position(|(index, guest)| {
            !claimed.contains(&(&entry.source, index))
                && match &entry.identity {
                    Identity::Vmid(vmid) => guest.vmid == Some(*vmid),
                    Identity::Name(name) => guest.record.state.name() == name,
                }
        });
        let Some(index) = found else {
            let (vmid, name) = match &entry.identity {
                Identity::Vmid(vmid) => (Some(*vmid), entry.expect.name().cloned()),
                Identity::Name(name) => (None, Some(name.clone())),
            };
            report.missing.push(Missing { kind, source: entry.source.clone(), vmid, name });
            continue;
        };
        claimed.insert((&entry.source, index));
        let guest = &guests[index];
        let Some(FieldDiffs(diffs)) = diff(&entry.expect, guest.record) else { continue };
        if diffs.is_empty() {
            continue;
        }
        let id = guest.record.id();
        let name = guest.record.state.name().to_owned();
        let fields = diffs
            .into_iter()
            .map(|(field, declared, actual)| Changed {
                kind,
                id: id.clone(),
                name: name.clone(),
                field: field.to_owned(),
                declared,
                actual,
            })
            .collect();
        changed.insert((&entry.source, guest.vmid, &guest.record.key), fields);
    }
    report.changed.extend(changed.into_values().flatten());

    let declares_templates: BTreeSet<&SourceName> =
        declared.iter().filter(|d| d.expect.template() == Some(true)).map(|d| &d.source).collect();
    for (source, guests) in &present {
        for (index, guest) in guests.iter().enumerate() {
            if claimed.contains(&(*source, index)) || (guest.template && !declares_templates.contains(source)) {
                continue;
            }
            report.unexpected.push(Unexpected {
                kind,
                id: guest.record.id(),
                name: guest.record.state.name().to_owned(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::{ContainerRuntime, Usage};
    use crate::{Revision, Timestamp};

    fn source(name: &str) -> SourceName {
        name.parse().expect("valid source")
    }

    fn vm(source_name: &str, vmid: u32, name: &str) -> InventoryRecord {
        record(
            source_name,
            vmid,
            RecordState::Vm(Vm {
                host: "pve-a".into(),
                vmid,
                name: name.into(),
                status: "running".into(),
                template: false,
                cpus: 16,
                memory_total: 64 << 30,
                disk_total: 200 << 30,
                ha_managed: true,
                lock: None,
                config_digest: Some("d".into()),
                gpu_devices: vec!["0000:41:00.0".into(), "0000:42:00.0".into()],
                node_id: None,
                labels: Default::default(),
            }),
        )
    }

    fn container(source_name: &str, vmid: u32, name: &str) -> InventoryRecord {
        record(
            source_name,
            vmid,
            RecordState::Container(Container {
                runtime: ContainerRuntime::Lxc,
                host: "pve-b".into(),
                vmid: Some(vmid),
                name: name.into(),
                hostname: Some(name.into()),
                os_template: Some("debian-12".into()),
                status: "running".into(),
                template: false,
                cpus: 2,
                memory_total: 4 << 30,
                disk_total: 8 << 30,
                ha_managed: false,
                lock: None,
                config_digest: None,
                labels: Default::default(),
            }),
        )
    }

    fn record(source_name: &str, vmid: u32, state: RecordState) -> InventoryRecord {
        let at = Timestamp::from_unix_micros(1);
        InventoryRecord {
            source: source(source_name),
            key: vmid.to_string(),
            state,
            digest: "x".into(),
            usage: Usage::default(),
            usage_at: at,
            first_seen: at,
            last_seen: at,
            gone_at: None,
            revision: Revision::FIRST,
        }
    }

    fn by_vmid<F>(source_name: &str, vmid: u32, expect: F) -> Declared<F> {
        Declared { source: source(source_name), identity: Identity::Vmid(vmid), expect }
    }

    fn vms(entries: Vec<Declared<VmFields>>) -> Declaration {
        Declaration { default_source: Some(source("pve1")), vms: Some(entries), containers: None }
    }

    #[test]
    fn a_declaration_that_matches_reports_no_drift() {
        let records = [vm("pve1", 104, "train-01"), container("pve1", 201, "cache")];
        let declaration = Declaration {
            default_source: Some(source("pve1")),
            vms: Some(vec![by_vmid(
                "pve1",
                104,
                VmFields {
                    name: Some("train-01".into()),
                    cpus: Some(16),
                    memory_total: Some(64 << 30),
                    // In another order than Proxmox lists them.
                    gpu_devices: Some(vec!["0000:42:00.0".into(), "0000:41:00.0".into()]),
                    ha_managed: Some(true),
                    ..VmFields::default()
                },
            )]),
            containers: Some(vec![by_vmid(
                "pve1",
                201,
                ContainerFields { os_template: Some("debian-12".into()), ..ContainerFields::default() },
            )]),
        };
        let report = compare(&declaration, &records);
        assert!(report.is_empty(), "{report:?}");
        assert_eq!(report.counts(), DriftCounts::default());
    }

    #[test]
    fn each_kind_of_drift_is_reported_in_a_fixed_order() {
        let mut gone = vm("pve1", 103, "old");
        gone.gone_at = Some(Timestamp::from_unix_micros(5));
        let records = [
            vm("pve1", 106, "scratch"),
            vm("pve1", 105, "train-02"),
            gone,
            vm("pve1", 104, "train-01"),
            vm("pve1", 1000, "big"),
            // Another source and another kind: outside what the declaration speaks for.
            vm("pve2", 300, "elsewhere"),
            container("pve1", 201, "cache"),
        ];
        let declaration = vms(vec![
            by_vmid("pve1", 105, VmFields { cpus: Some(8), status: Some("stopped".into()), ..VmFields::default() }),
            by_vmid("pve1", 104, VmFields { name: Some("train-01".into()), ..VmFields::default() }),
            by_vmid("pve1", 103, VmFields { name: Some("old".into()), ..VmFields::default() }),
            Declared { source: source("pve1"), identity: Identity::Name("ghost".into()), expect: VmFields::default() },
        ]);
        let report = compare(&declaration, &records);
        assert_eq!(
            report.lines(),
            [
                "missing vm pve1/103 (old)",
                "missing vm named ghost in pve1",
                "unexpected vm pve1/106 (scratch)",
                "unexpected vm pve1/1000 (big)",
                "changed vm pve1/105 (train-02) status: declared stopped, actual running",
                "changed vm pve1/105 (train-02) cpus: declared 8, actual 16",
            ]
        );
        assert_eq!(report.counts(), DriftCounts { missing: 2, unexpected: 2, changed: 1 });
        // The same records in another order give the same report.
        let mut reversed = records.to_vec();
        reversed.reverse();
        assert_eq!(compare(&declaration, &reversed), report);
    }

    #[test]
    fn every_declared_field_is_compared_and_shown_in_its_units() {
        let records = [vm("pve1", 104, "train-01"), container("pve1", 201, "cache")];
        let declaration = Declaration {
            default_source: None,
            vms: Some(vec![by_vmid(
                "pve1",
                104,
                VmFields {
                    name: Some("train-1".into()),
                    host: Some("pve-b".into()),
                    status: Some("stopped".into()),
                    template: Some(true),
                    cpus: Some(8),
                    memory_total: Some(32 << 30),
                    disk_total: Some(1 << 40),
                    ha_managed: Some(false),
                    gpu_devices: Some(vec!["0000:41:00.0".into()]),
                },
            )]),
            containers: Some(vec![by_vmid(
                "pve1",
                201,
                ContainerFields {
                    name: Some("cache".into()),
                    os_template: Some("alpine-3".into()),
                    hostname: Some("".into()),
                    memory_total: Some(1000),
                    ..ContainerFields::default()
                },
            )]),
        };
        let report = compare(&declaration, &records);
        let fields: Vec<&str> = report.changed.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "name",
                "host",
                "status",
                "template",
                "cpus",
                "memory_total",
                "disk_total",
                "ha_managed",
                "gpu_devices",
                "os_template",
                "hostname",
                "memory_total"
            ]
        );
        let lines = report.lines();
        assert!(lines.contains(&"changed vm pve1/104 (train-01) memory_total: declared 32GiB, actual 64GiB".into()));
        assert!(lines.contains(&"changed vm pve1/104 (train-01) disk_total: declared 1TiB, actual 200GiB".into()));
        assert!(
            lines.contains(
                &"changed vm pve1/104 (train-01) gpu_devices: declared [\"0000:41:00.0\"], actual \
              [\"0000:41:00.0\",\"0000:42:00.0\"]"
                    .into()
            )
        );
        assert!(lines.contains(&"changed container pve1/201 (cache) hostname: declared \"\", actual cache".into()));
        assert!(lines.contains(&"changed container pve1/201 (cache) memory_total: declared 1000, actual 4GiB".into()));
        assert_eq!(report.counts(), DriftCounts { missing: 0, unexpected: 0, changed: 2 });
    }

    #[test]
    fn a_name_identifies_the_lowest_unclaimed_vmid_with_it() {
        let records = [vm("pve1", 110, "twin"), vm("pve1", 104, "twin"), vm("pve1", 120, "twin")];
        let declaration = vms(vec![
            Declared { source: source("pve1"), identity: Identity::Name("twin".into()), expect: VmFields::default() },
            // A vmid claims its record before names are matched.
            by_vmid("pve1", 104, VmFields::default()),
        ]);
        let report = compare(&declaration, &records);
        assert_eq!(report.lines(), ["unexpected vm pve1/120 (twin)"]);
    }

    #[test]
    fn templates_are_unexpected_only_where_a_template_is_declared() {
        let mut template = vm("pve1", 9000, "gpu-template");
        if let RecordState::Vm(vm) = &mut template.state {
            vm.template = true;
        }
        let records = [vm("pve1", 104, "train-01"), template];
        let only_guests = vms(vec![by_vmid("pve1", 104, VmFields::default())]);
        assert!(compare(&only_guests, &records).is_empty());
        let with_template = vms(vec![
            by_vmid("pve1", 104, VmFields::default()),
            by_vmid("pve1", 9001, VmFields { template: Some(true), ..VmFields::default() }),
        ]);
        assert_eq!(
            compare(&with_template, &records).lines(),
            ["missing vm pve1/9001", "unexpected vm pve1/9000 (gpu-template)"]
        );
    }

    #[test]
    fn an_empty_list_expects_none_and_an_absent_one_checks_nothing() {
        let records = [vm("pve1", 104, "train-01"), container("pve1", 201, "cache")];
        let no_containers =
            Declaration { default_source: Some(source("pve1")), vms: None, containers: Some(Vec::new()) };
        assert_eq!(compare(&no_containers, &records).lines(), ["unexpected container pve1/201 (cache)"]);
        assert_eq!(no_containers.kinds(), [InventoryKind::Container]);
        assert_eq!(no_containers.scope(InventoryKind::Vm), BTreeSet::new());
        // Without a default source, the sources are the entries' own.
        let elsewhere = Declaration {
            default_source: None,
            vms: Some(vec![by_vmid("pve2", 300, VmFields::default())]),
            containers: None,
        };
        assert_eq!(compare(&elsewhere, &records).lines(), ["missing vm pve2/300"]);
        assert_eq!(elsewhere.sources(), BTreeSet::from([source("pve2")]));
    }

    #[test]
    fn a_report_reads_back_from_its_json() {
        let records = [vm("pve1", 105, "train-02")];
        let report =
            compare(&vms(vec![by_vmid("pve1", 105, VmFields { cpus: Some(8), ..VmFields::default() })]), &records);
        let json = serde_json::to_value(&report).expect("json");
        assert_eq!(json["changed"][0]["field"], "cpus");
        assert_eq!(json["changed"][0]["declared"], 8);
        assert_eq!(serde_json::from_value::<DriftReport>(json).expect("reads back"), report);
    }
}
