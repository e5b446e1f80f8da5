//! Inventory declarations: the VMs and containers that should be there, with the fields
//! that matter, for `bosun inventory diff FILE` and the server's `inventory.declaration`.
//!
//! ```yaml
//! source: pve1              # the source of entries that name none
//! vms:
//!   - vmid: 104             # what it is known by: vmid, or name when there is no vmid
//!     name: train-01
//!     host: pve-a
//!     status: running
//!     cpus: 16
//!     memory_total: 64GiB   # bytes, or with a binary unit (KiB, MiB, GiB, TiB)
//!     disk_total: 200GiB
//!     template: false
//!     ha_managed: true
//!     gpu_devices: ["0000:01:00.0"]
//! containers:
//!   - vmid: 201
//!     source: pve2          # another source than the default
//!     name: cache
//!     hostname: cache
//!     status: running
//!     os_template: debian-12
//!     cpus: 2
//!     memory_total: 4GiB
//! ```
//!
//! Every field but the identity is optional: only declared fields are compared. Parsing
//! is as strict as the configuration file's (an unknown key is an error naming its path
//! and line) and as bounded ([`bosun_yaml::Limits::FILE`]); an entry declared twice is an
//! error naming both. What a declaration means is `bosun_core::inventory::drift`'s.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read as _;
use std::path::Path;

use bosun_core::SourceName;
use bosun_core::inventory::InventoryKind;
use bosun_core::inventory::drift::{ContainerFields, Declaration, Declared, Identity, VmFields};
use bosun_core::size::{SIZE_HINT, parse_bytes};
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use crate::ConfigError;

/// The largest declaration read: the configuration file's bound.
pub const MAX_DECLARATION_BYTES: usize = bosun_yaml::Limits::FILE.max_bytes;

/// Proxmox's vmids.
const VMIDS: std::ops::RangeInclusive<u32> = 100..=999_999_999;

/// The longest text a declared field may hold (names, hosts, statuses, devices).
const MAX_TEXT: usize = 255;

/// Reads and parses a declaration file; errors name the file.
pub fn load(path: &Path) -> Result<Declaration, ConfigError> {
    let file = std::fs::File::open(path).map_err(|e| ConfigError::read(path, &e))?;
    // A FIFO or a device would block the read or never end it.
    if !file.metadata().map_err(|e| ConfigError::read(path, &e))?.is_file() {
        return Err(ConfigError::syntax("is not a regular file").in_file(path));
    }
    let mut text = String::new();
    // One byte past the limit tells a file at the limit from a larger one without
    // reading a huge file whole.
    file.take(MAX_DECLARATION_BYTES as u64 + 1).read_to_string(&mut text).map_err(|e| ConfigError::read(path, &e))?;
    if text.len() > MAX_DECLARATION_BYTES {
        return Err(ConfigError::syntax(format_args!(
            "the file is larger than {MAX_DECLARATION_BYTES} bytes, the most a declaration may be"
        ))
        .in_file(path));
    }
    parse(&text).map_err(|e| e.in_file(path))
}

/// Parses a declaration: limits, YAML syntax, schema (unknown keys and bad sizes are
/// errors naming path and line), then values.
pub fn parse(text: &str) -> Result<Declaration, ConfigError> {
    let raw: RawDeclaration = crate::parse::parse_document(text, &bosun_yaml::Limits::FILE)?;
    raw.resolve()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDeclaration {
    source: Option<String>,
    vms: Option<Vec<RawVm>>,
    containers: Option<Vec<RawContainer>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVm {
    source: Option<String>,
    vmid: Option<u32>,
    name: Option<String>,
    host: Option<String>,
    status: Option<String>,
    template: Option<bool>,
    cpus: Option<u32>,
    memory_total: Option<ByteSize>,
    disk_total: Option<ByteSize>,
    ha_managed: Option<bool>,
    gpu_devices: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawContainer {
    source: Option<String>,
    vmid: Option<u32>,
    name: Option<String>,
    host: Option<String>,
    status: Option<String>,
    template: Option<bool>,
    os_template: Option<String>,
    hostname: Option<String>,
    cpus: Option<u32>,
    memory_total: Option<ByteSize>,
    disk_total: Option<ByteSize>,
    ha_managed: Option<bool>,
}

/// A byte count written as a number or with a binary unit (`64GiB`); anything else is a
/// schema error, so it is reported with its line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ByteSize(u64);

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SizeVisitor;
        impl Visitor<'_> for SizeVisitor {
            type Value = ByteSize;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(SIZE_HINT)
            }

            fn visit_u64<E: de::Error>(self, bytes: u64) -> Result<ByteSize, E> {
                parse_bytes(&bytes.to_string())
                    .map(ByteSize)
                    .ok_or_else(|| E::invalid_value(de::Unexpected::Unsigned(bytes), &self))
            }

            fn visit_i64<E: de::Error>(self, bytes: i64) -> Result<ByteSize, E> {
                u64::try_from(bytes)
                    .map_err(|_| E::invalid_value(de::Unexpected::Signed(bytes), &self))
                    .and_then(|bytes| self.visit_u64(bytes))
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<ByteSize, E> {
                parse_bytes(text).map(ByteSize).ok_or_else(|| E::invalid_value(de::Unexpected::Str(text), &self))
            }
        }
        deserializer.deserialize_any(SizeVisitor)
    }
}

/// What every entry has besides its kind's fields.
struct Common<'a> {
    source: &'a Option<String>,
    vmid: Option<u32>,
    name: &'a Option<String>,
    host: &'a Option<String>,
    status: &'a Option<String>,
}

/// An entry's identity and the fields every kind compares.
struct Entry {
    /// Its key path (`vms[3]`).
    key: String,
    source: SourceName,
    identity: Identity,
    /// The name to compare: `None` when the name is the identity.
    name: Option<String>,
    host: Option<String>,
    status: Option<String>,
}

/// Declared entries of one kind, by identity, to refuse the second of any.
struct Seen {
    kind: InventoryKind,
    list: &'static str,
    entries: BTreeMap<(SourceName, Identity), usize>,
}

impl Seen {
    fn new(kind: InventoryKind, list: &'static str) -> Self {
        Self { kind, list, entries: BTreeMap::new() }
    }

    /// Resolves an entry's source, identity and common fields; an identity seen before is
    /// an error naming both entries.
    fn entry(&mut self, index: usize, common: Common<'_>, default: Option<&SourceName>) -> Result<Entry, ConfigError> {
        let key = format!("{}[{index}]", self.list);
        let source = match common.source {
            Some(name) => {
                name.parse::<SourceName>().map_err(|e| ConfigError::from_validation(&format!("{key}.source"), e))?
            }
            None => default.cloned().ok_or_else(|| {
                ConfigError::invalid(
                    format!("{key}.source"),
                    "is required when the declaration has no top-level source",
                )
            })?,
        };
        let identity = match (common.vmid, common.name) {
            (Some(vmid), _) if !VMIDS.contains(&vmid) => {
                return Err(ConfigError::invalid(
                    format!("{key}.vmid"),
                    format_args!("{vmid} is not a vmid ({} to {})", VMIDS.start(), VMIDS.end()),
                ));
            }
            (Some(vmid), _) => Identity::Vmid(vmid),
            (None, Some(name)) => Identity::Name(text(&format!("{key}.name"), name)?),
            (None, None) => {
                return Err(ConfigError::invalid(key, "give vmid, or name for an entry without one"));
            }
        };
        if let Some(first) = self.entries.insert((source.clone(), identity.clone()), index) {
            let what = match &identity {
                Identity::Vmid(vmid) => format!("{} {source}/{vmid}", self.kind),
                Identity::Name(name) => format!("the {} named {name} in {source}", self.kind),
            };
            return Err(ConfigError::invalid(
                key,
                format_args!("declares {what}, which {}[{first}] declares already", self.list),
            ));
        }
        Ok(Entry {
            // A name that identifies the entry is not compared as well.
            name: if common.vmid.is_some() { optional_text(&key, "name", common.name.as_ref())? } else { None },
            host: optional_text(&key, "host", common.host.as_ref())?,
            status: optional_text(&key, "status", common.status.as_ref())?,
            key,
            source,
            identity,
        })
    }
}

/// A declared text: printable, at most [`MAX_TEXT`] bytes.
fn text(key: &str, value: &str) -> Result<String, ConfigError> {
    if value.is_empty() || value.len() > MAX_TEXT || value.chars().any(char::is_control) {
        return Err(ConfigError::invalid(key, format_args!("must be 1 to {MAX_TEXT} printable characters")));
    }
    Ok(value.to_owned())
}

fn optional_text(key: &str, field: &str, value: Option<&String>) -> Result<Option<String>, ConfigError> {
    value.map(|v| text(&format!("{key}.{field}"), v)).transpose()
}

impl RawDeclaration {
    fn resolve(self) -> Result<Declaration, ConfigError> {
        let default_source = self
            .source
            .map(|name| name.parse::<SourceName>().map_err(|e| ConfigError::from_validation("source", e)))
            .transpose()?;
        if self.vms.is_none() && self.containers.is_none() {
            return Err(ConfigError::schema(None, None, "the declaration lists nothing: give vms, containers or both"));
        }
        let vms = self
            .vms
            .map(|vms| {
                let mut seen = Seen::new(InventoryKind::Vm, "vms");
                vms.into_iter().enumerate().map(|(index, vm)| vm.resolve(index, &mut seen, &default_source)).collect()
            })
            .transpose()?;
        let containers = self
            .containers
            .map(|containers| {
                let mut seen = Seen::new(InventoryKind::Container, "containers");
                containers
                    .into_iter()
                    .enumerate()
                    .map(|(index, container)| container.resolve(index, &mut seen, &default_source))
                    .collect()
            })
            .transpose()?;
        let declaration = Declaration { default_source, vms, containers };
        if declaration.sources().is_empty() {
            return Err(ConfigError::invalid(
                "source",
                "is required: without it, empty lists name no source to compare",
            ));
        }
        Ok(declaration)
    }
}

impl RawVm {
    fn resolve(
        self,
        index: usize,
        seen: &mut Seen,
        default: &Option<SourceName>,
    ) -> Result<Declared<VmFields>, ConfigError> {
        let common =
            Common { source: &self.source, vmid: self.vmid, name: &self.name, host: &self.host, status: &self.status };
        let Entry { key, source, identity, name, host, status } = seen.entry(index, common, default.as_ref())?;
        let gpu_devices = self
            .gpu_devices
            .map(|devices| {
                devices
                    .iter()
                    .enumerate()
                    .map(|(i, device)| text(&format!("{key}.gpu_devices[{i}]"), device))
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?;
        let expect = VmFields {
            name,
            host,
            status,
            template: self.template,
            cpus: self.cpus,
            memory_total: self.memory_total.map(|s| s.0),
            disk_total: self.disk_total.map(|s| s.0),
            ha_managed: self.ha_managed,
            gpu_devices,
        };
        Ok(Declared { source, identity, expect })
    }
}

impl RawContainer {
    fn resolve(
        self,
        index: usize,
        seen: &mut Seen,
        default: &Option<SourceName>,
    ) -> Result<Declared<ContainerFields>, ConfigError> {
        let common =
            Common { source: &self.source, vmid: self.vmid, name: &self.name, host: &self.host, status: &self.status };
        let Entry { key, source, identity, name, host, status } = seen.entry(index, common, default.as_ref())?;
        let expect = ContainerFields {
            name,
            host,
            status,
            template: self.template,
            os_template: optional_text(&key, "os_template", self.os_template.as_ref())?,
            hostname: optional_text(&key, "hostname", self.hostname.as_ref())?,
            cpus: self.cpus,
            memory_total: self.memory_total.map(|s| s.0),
            disk_total: self.disk_total.map(|s| s.0),
            ha_managed: self.ha_managed,
        };
        Ok(Declared { source, identity, expect })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = "\
source: pve1
vms:
  - vmid: 104
    name: train-01
    host: pve-a
    status: running
    cpus: 16
    memory_total: 64GiB
    disk_total: 214748364800
    template: false
    ha_managed: true
    gpu_devices: [\"0000:01:00.0\"]
  - name: scratch
containers:
  - vmid: 201
    source: pve2
    name: cache
    status: running
    os_template: debian-12
    hostname: cache
    cpus: 2
    memory_total: 4096MiB
";

    fn pve(name: &str) -> SourceName {
        name.parse().expect("valid")
    }

    #[test]
    fn the_documented_example_parses_as_written() {
        let declaration = parse(EXAMPLE).expect("valid declaration");
        assert_eq!(declaration.default_source, Some(pve("pve1")));
        let vms = declaration.vms.as_ref().expect("vms");
        assert_eq!(
            vms[0],
            Declared {
                source: pve("pve1"),
                identity: Identity::Vmid(104),
                expect: VmFields {
                    name: Some("train-01".into()),
                    host: Some("pve-a".into()),
                    status: Some("running".into()),
                    template: Some(false),
                    cpus: Some(16),
                    memory_total: Some(64 << 30),
                    disk_total: Some(200 << 30),
                    ha_managed: Some(true),
                    gpu_devices: Some(vec!["0000:01:00.0".into()]),
                },
            }
        );
        // Known by its name: the name is its identity, not a field to compare.
        assert_eq!((&vms[1].identity, &vms[1].expect), (&Identity::Name("scratch".into()), &VmFields::default()));
        let containers = declaration.containers.as_ref().expect("containers");
        assert_eq!((containers[0].source.as_str(), containers[0].expect.memory_total), ("pve2", Some(4 << 30)));
        assert_eq!(containers[0].expect.os_template.as_deref(), Some("debian-12"));
        assert_eq!(declaration.sources().into_iter().map(|s| s.to_string()).collect::<Vec<_>>(), ["pve1", "pve2"]);
    }

    #[test]
    fn unknown_keys_and_bad_sizes_name_path_and_line() {
        let cases = [
            ("source: pve1\nvms:\n  - vmid: 104\n    cpu: 4\n", "vms[0].cpu", "line 4"),
            ("source: pve1\nvms:\n  - vmid: 104\n  - vmid: 105\n    colour: red\n", "vms[1].colour", "line 5"),
            ("sources: pve1\nvms: []\n", "sources", "line 1"),
            (
                "source: pve1\ncontainers:\n  - vmid: 201\n    memory_total: 4GB\n",
                "containers[0].memory_total",
                "line 4",
            ),
            ("source: pve1\nvms:\n  - vmid: 104\n    disk_total: -1\n", "vms[0].disk_total", "line 4"),
            ("source: pve1\nvms:\n  - vmid: 104\n    memory_total: 9000000TiB\n", "vms[0].memory_total", "line 4"),
            ("source: pve1\nvms:\n  - vmid: -4\n", "vms[0].vmid", "line 3"),
            ("source: pve1\nvms:\n  - vmid: 104\n    cpus: many\n", "vms[0].cpus", "line 4"),
        ];
        for (text, path, line) in cases {
            let error = parse(text).expect_err(text);
            let message = error.to_string();
            assert!(message.contains(path) && message.contains(line), "{text}: {message}");
        }
        let error = parse("source: pve1\nvms:\n  - vmid: 104\n    cpu: 4\n").expect_err("unknown key");
        assert_eq!((error.key(), error.line()), (Some("vms[0].cpu"), Some(4)));
        assert!(error.problem().starts_with("unknown key; expected one of source, vmid, name"), "{error}");
        let size = parse("source: pve1\nvms:\n  - vmid: 104\n    memory_total: 64GB\n").expect_err("bad size");
        assert!(size.problem().contains("68719476736, 512MiB or 64GiB"), "{size}");
    }

    #[test]
    fn an_entry_declared_twice_names_both() {
        let cases = [
            (
                "source: pve1\nvms:\n  - vmid: 104\n  - vmid: 105\n  - vmid: 104\n",
                "vms[2]: declares vm pve1/104, which vms[0] declares already",
            ),
            (
                "source: pve1\ncontainers:\n  - name: cache\n  - name: cache\n    source: pve1\n",
                "containers[1]: declares the container named cache in pve1, which containers[0] declares already",
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(parse(text).expect_err(text).to_string(), expected);
        }
        // The same vmid in two sources, or as a VM and a container, is two resources.
        parse("source: pve1\nvms:\n  - vmid: 104\n  - vmid: 104\n    source: pve2\ncontainers:\n  - vmid: 104\n")
            .expect("distinct");
    }

    #[test]
    fn values_that_cannot_identify_or_describe_a_guest_are_named() {
        let cases = [
            ("vms:\n  - vmid: 104\n", "vms[0].source: is required when the declaration has no top-level source"),
            ("source: pve1\nvms:\n  - cpus: 4\n", "vms[0]: give vmid, or name for an entry without one"),
            ("source: pve1\nvms:\n  - vmid: 99\n", "vms[0].vmid: 99 is not a vmid (100 to 999999999)"),
            ("source: 'has space'\nvms: []\n", "source"),
            ("source: pve1\nvms:\n  - vmid: 104\n    source: 'a/b'\n", "vms[0].source"),
            ("source: pve1\nvms:\n  - vmid: 104\n    name: ''\n", "vms[0].name: must be 1 to 255 printable characters"),
            ("source: pve1\nvms:\n  - vmid: 104\n    gpu_devices: [\"a\\nb\"]\n", "vms[0].gpu_devices[0]"),
            ("source: pve1\n", "the declaration lists nothing"),
            ("vms: []\ncontainers: []\n", "source: is required"),
            ("", "the declaration lists nothing"),
            ("vms: [\n", "line"),
        ];
        for (text, expected) in cases {
            let message = parse(text).expect_err(text).to_string();
            assert!(message.contains(expected), "{text:?}: {message}");
        }
    }

    #[test]
    fn a_file_is_read_within_the_limit_and_named_in_errors() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let good = dir.path().join("declared.yaml");
        std::fs::write(&good, EXAMPLE).expect("write");
        assert_eq!(load(&good).expect("loads"), parse(EXAMPLE).expect("parses"));
        let bad = dir.path().join("bad.yaml");
        std::fs::write(&bad, "source: pve1\nvms:\n  - vmid: 104\n    cpu: 4\n").expect("write");
        let message = load(&bad).expect_err("unknown key").to_string();
        assert!(message.starts_with(&format!("{}: vms[0].cpu: unknown key", bad.display())), "{message}");
        assert!(message.ends_with("(line 4)"), "{message}");
        let huge = dir.path().join("huge.yaml");
        std::fs::write(&huge, "#".repeat(MAX_DECLARATION_BYTES + 10)).expect("write");
        assert!(load(&huge).expect_err("too large").to_string().contains("larger than"), "too large");
        let directory = load(dir.path()).expect_err("a directory").to_string();
        assert!(directory.ends_with("is not a regular file"), "{directory}");
        let missing = load(&dir.path().join("absent.yaml")).expect_err("absent").to_string();
        assert!(missing.contains("absent.yaml") && missing.contains("cannot read"), "{missing}");
    }
}
