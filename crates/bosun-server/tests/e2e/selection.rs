//! A pool's `strategy`, as YAML writes it, decides which provider gets the next machine:
//! `cost` picks the cheapest published price, `availability` a provider with capacity in
//! the pool's region, over the providers' priorities.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bosun_config::{Config, ProviderType};
use bosun_provider::{InstanceTypeOffer, Provider, ProviderError, ProviderInstance, ProvisionRequest, Provisioned};
use bosun_store::Backend;

use crate::harness::*;

on_sql_backends!(the_strategy_from_yaml_picks_the_provider);

/// A provider that publishes one offer for `h100-8x` and records what it was asked to
/// provision (its machines never boot: only the choice matters here).
#[derive(Debug)]
struct Offering {
    name: String,
    price_per_hour: f64,
    regions_with_capacity: Vec<String>,
    provisioned: Mutex<Vec<String>>,
}

impl Offering {
    fn new(name: &str, price_per_hour: f64, regions_with_capacity: &[&str]) -> Arc<Offering> {
        Arc::new(Offering {
            name: name.to_owned(),
            price_per_hour,
            regions_with_capacity: regions_with_capacity.iter().map(|r| (*r).to_owned()).collect(),
            provisioned: Mutex::new(Vec::new()),
        })
    }

    fn count(&self) -> usize {
        self.provisioned.lock().expect("lock").len()
    }
}

#[async_trait]
impl Provider for Offering {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> ProviderType {
        ProviderType::Fake
    }

    async fn provision(&self, request: &ProvisionRequest) -> Result<Provisioned, ProviderError> {
        let mut provisioned = self.provisioned.lock().expect("lock");
        provisioned.push(request.instance_id.to_string());
        Ok(Provisioned {
            provider_instance_id: format!("{}-{}", self.name, provisioned.len()),
            region: request.region.clone(),
            zone: request.zone.clone(),
        })
    }

    async fn terminate(&self, _: &str) -> Result<(), ProviderError> {
        Ok(())
    }

    async fn list(&self) -> Result<Vec<ProviderInstance>, ProviderError> {
        Ok(Vec::new())
    }

    async fn instance_types(&self) -> Result<Vec<InstanceTypeOffer>, ProviderError> {
        Ok(vec![InstanceTypeOffer {
            name: "h100-8x".into(),
            gpu_count: 8,
            gpu_model: "NVIDIA H100 80GB HBM3".into(),
            price_per_hour: Some(self.price_per_hour),
            regions_with_capacity: self.regions_with_capacity.clone(),
        }])
    }
}

/// Pool `p` over `first` (priority 1) and `second` (priority 2) with `strategy`, read from
/// YAML as an operator writes it.
fn pool_spec(strategy: &str) -> bosun_core::PoolSpec {
    let text = format!(
        "providers:\n  first: {{type: fake}}\n  second: {{type: fake}}\npools:\n  p:\n    providers:\n      \
         - {{name: first, priority: 1}}\n      - {{name: second, priority: 2}}\n    strategy: {strategy}\n    \
         instance_type: h100-8x\n    region: us-1\n    min_nodes: 1\n    max_nodes: 1\n"
    );
    let config = Config::from_yaml_str(&text, |_| None).unwrap_or_else(|e| panic!("{strategy}: {e}"));
    config.pools.into_iter().find(|(name, _)| name.as_str() == "p").expect("pool p").1.spec
}

/// Which provider the pool's first machine comes from.
async fn chosen(backend: Backend, strategy: &str, first: Arc<Offering>, second: Arc<Offering>) -> Option<&'static str> {
    let providers: Vec<(String, Arc<dyn Provider>)> = vec![
        ("first".to_owned(), first.clone() as Arc<dyn Provider>),
        ("second".to_owned(), second.clone() as Arc<dyn Provider>),
    ];
    let h = Harness::start_with_pool_providers(backend, "p", pool_spec(strategy), providers).await?;
    h.server().reconcile_pools().await.expect("reconcile");
    let picked = match (first.count(), second.count()) {
        (1, 0) => "first",
        (0, 1) => "second",
        other => panic!("{strategy}: one machine from one provider, got {other:?}"),
    };
    h.stop().await;
    Some(picked)
}

async fn the_strategy_from_yaml_picks_the_provider(backend: Backend) {
    // `first` is dearer and has no capacity in us-1; `second` is cheaper with capacity there.
    let offers = || (Offering::new("first", 40.0, &["eu-1"]), Offering::new("second", 10.0, &["us-1"]));
    let (first, second) = offers();
    let Some(picked) = chosen(backend, "priority", first, second).await else { return };
    assert_eq!(picked, "first", "priority: the lower priority number");
    let (first, second) = offers();
    assert_eq!(chosen(backend, "cost", first, second).await, Some("second"), "cost: the cheaper price");
    let (first, second) = offers();
    assert_eq!(
        chosen(backend, "availability", first, second).await,
        Some("second"),
        "availability: capacity in the pool's region"
    );
    // Flip the offers: cost and availability follow them, not the priorities.
    let flipped = || (Offering::new("first", 10.0, &["us-1"]), Offering::new("second", 40.0, &["eu-1"]));
    let (first, second) = flipped();
    assert_eq!(chosen(backend, "cost", first, second).await, Some("first"));
    let (first, second) = flipped();
    assert_eq!(chosen(backend, "availability", first, second).await, Some("first"));
}
