//! Abstract instance types: a pool asks for `h100-8x` and each provider provisions its own
//! equivalent, so a pool can span clouds without naming each cloud's SKU.

use bosun_config::ProviderType;

/// One abstract type and its name on each cloud.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstanceTypeSpec {
    pub name: &'static str,
    pub gpu_count: u32,
    pub gpu_model: &'static str,
    pub lambda: Option<&'static str>,
    pub gcp: Option<&'static str>,
    pub aws: Option<&'static str>,
}

/// The abstract types bosun knows. A name not listed here is passed to the provider as
/// its own (concrete) type unchanged.
pub const CATALOG: &[InstanceTypeSpec] = &[
    InstanceTypeSpec {
        name: "h100-8x",
        gpu_count: 8,
        gpu_model: "NVIDIA H100 80GB HBM3",
        lambda: Some("gpu_8x_h100_sxm5"),
        gcp: Some("a3-highgpu-8g"),
        aws: Some("p5.48xlarge"),
    },
    InstanceTypeSpec {
        name: "h100-1x",
        gpu_count: 1,
        gpu_model: "NVIDIA H100 80GB HBM3",
        lambda: Some("gpu_1x_h100_pcie"),
        gcp: Some("a3-highgpu-1g"),
        aws: None,
    },
    InstanceTypeSpec {
        name: "a100-8x",
        gpu_count: 8,
        gpu_model: "NVIDIA A100-SXM4-80GB",
        lambda: Some("gpu_8x_a100_80gb_sxm4"),
        gcp: Some("a2-ultragpu-8g"),
        aws: Some("p4de.24xlarge"),
    },
    InstanceTypeSpec {
        name: "a100-1x",
        gpu_count: 1,
        gpu_model: "NVIDIA A100-SXM4-40GB",
        lambda: Some("gpu_1x_a100_sxm4"),
        gcp: Some("a2-highgpu-1g"),
        aws: None,
    },
    InstanceTypeSpec {
        name: "a10-1x",
        gpu_count: 1,
        gpu_model: "NVIDIA A10",
        lambda: Some("gpu_1x_a10"),
        gcp: None,
        aws: Some("g5.xlarge"),
    },
];

/// The name `provider` uses for `requested`: the catalog's mapping for an abstract type,
/// the type itself for a concrete one. `Err` names the providers that do offer an abstract
/// type this provider lacks.
pub fn resolve_instance_type(provider: ProviderType, requested: &str) -> Result<String, String> {
    let Some(spec) = CATALOG.iter().find(|s| s.name.eq_ignore_ascii_case(requested)) else {
        return Ok(requested.to_owned());
    };
    let mapped = match provider {
        // Local stand-ins run whatever they are asked for.
        ProviderType::Fake | ProviderType::Process => Some(spec.name),
        ProviderType::Lambda => spec.lambda,
        ProviderType::Gcp => spec.gcp,
        ProviderType::Aws => spec.aws,
        // A Proxmox VM is what its template is: no abstract type fits every template.
        ProviderType::Proxmox => None,
    };
    mapped.map(str::to_owned).ok_or_else(|| {
        let offered: Vec<&str> = [("lambda", spec.lambda), ("gcp", spec.gcp), ("aws", spec.aws)]
            .iter()
            .filter_map(|(name, sku)| sku.map(|_| *name))
            .collect();
        format!("{provider} does not offer {}; {} do", spec.name, offered.join(", "))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abstract_types_map_per_provider_and_concrete_ones_pass_through() {
        assert_eq!(resolve_instance_type(ProviderType::Gcp, "h100-8x"), Ok("a3-highgpu-8g".to_owned()));
        assert_eq!(resolve_instance_type(ProviderType::Aws, "H100-8X"), Ok("p5.48xlarge".to_owned()));
        assert_eq!(resolve_instance_type(ProviderType::Lambda, "h100-8x"), Ok("gpu_8x_h100_sxm5".to_owned()));
        assert_eq!(resolve_instance_type(ProviderType::Fake, "h100-8x"), Ok("h100-8x".to_owned()));
        assert_eq!(resolve_instance_type(ProviderType::Aws, "p4d.24xlarge"), Ok("p4d.24xlarge".to_owned()));
        let missing = resolve_instance_type(ProviderType::Aws, "h100-1x").unwrap_err();
        assert_eq!(missing, "aws does not offer h100-1x; lambda, gcp do");
        let template = resolve_instance_type(ProviderType::Proxmox, "a100-8x").unwrap_err();
        assert_eq!(template, "proxmox does not offer a100-8x; lambda, gcp, aws do");
        assert_eq!(resolve_instance_type(ProviderType::Proxmox, "pve-a100"), Ok("pve-a100".to_owned()));
    }

    #[test]
    fn catalog_names_are_unique() {
        for (i, a) in CATALOG.iter().enumerate() {
            assert!(CATALOG[i + 1..].iter().all(|b| a.name != b.name), "{} twice", a.name);
        }
    }
}
