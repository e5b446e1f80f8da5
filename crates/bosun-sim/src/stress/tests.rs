use rand::SeedableRng;

use super::*;
use crate::scenario::SimDuration;

fn fleet(total: u32, startup: Startup) -> FleetGen {
    FleetGen {
        total_nodes: total,
        templates: Vec::new(),
        providers: BTreeMap::new(),
        regions: BTreeMap::new(),
        zones: BTreeMap::new(),
        startup: Some(startup),
    }
}

#[test]
fn the_same_seed_generates_the_same_fleet() {
    let f = fleet(200, Startup::default());
    let a = generate(&f, &mut SmallRng::seed_from_u64(7));
    let b = generate(&f, &mut SmallRng::seed_from_u64(7));
    let ids = |p: &[Planned]| p.iter().map(|n| (n.spec.id.to_string(), n.start_at)).collect::<Vec<_>>();
    assert_eq!(ids(&a), ids(&b));
    assert_ne!(ids(&a), ids(&generate(&f, &mut SmallRng::seed_from_u64(8))));
    assert!(a[0].spec.id.as_str().ends_with("-h100-8gpu-0000"), "{}", a[0].spec.id);
    assert_eq!(a[0].spec.labels.get("generated"), Some("true"));
}

#[test]
fn startup_patterns_spread_nodes_over_their_duration() {
    let minute = Some(SimDuration(Duration::from_secs(60)));
    let no_jitter = Some(0.0);
    let mut rng = SmallRng::seed_from_u64(1);
    let linear = start_times(
        60,
        &Startup {
            pattern: Some(StartupPattern::Linear),
            duration: minute,
            jitter_percent: no_jitter,
            ..Startup::default()
        },
        &mut rng,
    );
    assert_eq!(linear[1], Duration::from_secs(1));
    assert_eq!(linear[59], Duration::from_secs(59));
    let wave = start_times(
        250,
        &Startup {
            pattern: Some(StartupPattern::Wave),
            duration: minute,
            batch_size: Some(100),
            jitter_percent: no_jitter,
            ..Startup::default()
        },
        &mut rng,
    );
    assert_eq!(wave[99], Duration::ZERO);
    assert_eq!(wave[100], Duration::from_secs(20));
    assert_eq!(wave[249], Duration::from_secs(40));
    let exponential = start_times(
        7,
        &Startup {
            pattern: Some(StartupPattern::Exponential),
            duration: minute,
            jitter_percent: no_jitter,
            ..Startup::default()
        },
        &mut rng,
    );
    // Batches of 1, 2, 4.
    assert_eq!(exponential[0], Duration::ZERO);
    assert_eq!(exponential[1], exponential[2]);
    assert!(exponential[3] > exponential[2]);
    assert_eq!(exponential[3], exponential[6]);
    assert!(
        start_times(5, &Startup { pattern: Some(StartupPattern::Instant), ..Startup::default() }, &mut rng)
            .iter()
            .all(Duration::is_zero)
    );
}

#[test]
fn cold_starts_stay_within_their_bounds() {
    let mut rng = SmallRng::seed_from_u64(3);
    let s = |secs: u64| Some(SimDuration(Duration::from_secs(secs)));
    let startup = Startup {
        cold_start_min: s(30),
        cold_start_max: s(90),
        cold_start_mean: s(60),
        cold_start_stddev: s(40),
        ..Startup::default()
    };
    for _ in 0..1000 {
        let d = cold_start(&startup, &mut rng);
        assert!(d >= Duration::from_secs(30) && d <= Duration::from_secs(90), "{d:?}");
    }
    assert_eq!(cold_start(&Startup::default(), &mut rng), Duration::ZERO);
}

/// `fleet_gen` as a scenario writes it.
fn fleet_gen(yaml: &str) -> FleetGen {
    let text = format!("name: t\nstress:\n  fleet_gen:\n{yaml}");
    let scenario = crate::scenario::Scenario::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    scenario.stress.and_then(|s| s.fleet_gen).expect("fleet_gen")
}

/// How many planned nodes have each value of `key`.
fn tally<'a>(planned: &'a [Planned], key: impl Fn(&'a Planned) -> &'a str) -> BTreeMap<&'a str, u32> {
    let mut counts = BTreeMap::new();
    for node in planned {
        *counts.entry(key(node)).or_insert(0) += 1;
    }
    counts
}

/// `count` is within `tolerance` of `share` of `total`.
fn near(count: u32, share: f64, total: u32, tolerance: f64) -> bool {
    (f64::from(count) - share * f64::from(total)).abs() <= tolerance * f64::from(total)
}

#[test]
fn provider_and_region_weights_shape_the_fleet() {
    let generated = fleet_gen(
        "    total_nodes: 2000\n    providers: {aws: 3, lambda: 1}\n    regions: {us-east1: 1, eu-west4: 1}\n    \
         zones: {us-east1: [us-east1-b, us-east1-c]}\n    startup: {pattern: instant}\n",
    );
    let planned = generate(&generated, &mut SmallRng::seed_from_u64(11));
    let providers = tally(&planned, |p| p.spec.provider.as_str());
    assert_eq!(providers.keys().copied().collect::<Vec<_>>(), ["aws", "lambda"]);
    assert!(near(providers["aws"], 0.75, 2000, 0.04), "{providers:?}");
    let regions = tally(&planned, |p| p.spec.region.as_str());
    assert!(near(regions["us-east1"], 0.5, 2000, 0.04), "{regions:?}");
    let zones = tally(&planned, |p| p.spec.zone.as_str());
    assert_eq!(
        zones.keys().copied().collect::<Vec<_>>(),
        ["eu-west4-a", "eu-west4-b", "eu-west4-c", "eu-west4-d", "us-east1-b", "us-east1-c"],
        "listed zones where given, <region>-a..d elsewhere"
    );
    for node in &planned {
        assert!(node.spec.id.as_str().starts_with(&format!("{}-{}-", node.spec.provider, node.spec.region)));
        assert!(node.spec.labels.get("rack").is_some_and(|r| r.starts_with(&node.spec.zone)));
    }
}

#[test]
fn without_weights_the_fleet_follows_navarchs_default_mix() {
    let planned = generate(&fleet_gen("    total_nodes: 4000\n"), &mut SmallRng::seed_from_u64(12));
    let providers = tally(&planned, |p| p.spec.provider.as_str());
    for (provider, share) in [("gcp", 0.50), ("aws", 0.35), ("lambda", 0.15)] {
        assert!(near(providers[provider], share, 4000, 0.03), "{provider}: {providers:?}");
    }
    assert_eq!(providers.len(), 3);
    let regions = tally(&planned, |p| p.spec.region.as_str());
    for (region, share) in
        [("us-central1", 0.30), ("us-east1", 0.25), ("us-west1", 0.20), ("europe-west1", 0.15), ("asia-east1", 0.10)]
    {
        assert!(near(regions[region], share, 4000, 0.03), "{region}: {regions:?}");
    }
    assert_eq!(regions.len(), 5);
    // The default template: 8 H100s, with Navarch's instance type per provider.
    for node in &planned {
        assert_eq!((node.spec.gpu_count, node.spec.gpu_type.as_str()), (8, "NVIDIA H100 80GB HBM3"));
        let expected = match node.spec.provider.as_str() {
            "gcp" => "a3-highgpu-8g",
            "aws" => "p5.48xlarge",
            _ => "gpu_8x_h100",
        };
        assert_eq!(node.spec.instance_type, expected);
        assert_eq!(node.spec.labels.get("template"), Some("h100-8gpu"));
    }
}

#[test]
fn templates_give_their_gpus_labels_and_share_of_the_fleet() {
    let generated = fleet_gen(
        "    total_nodes: 1000\n    providers: {aws: 1}\n    templates:\n      \
         - {name: big, weight: 3, gpu_count: 8, gpu_type: NVIDIA H200, instance_type: p5e.48xlarge, labels: {tier: premium}}\n      \
         - {name: small, weight: 1, gpu_count: 4, gpu_type: NVIDIA A100-SXM4-40GB}\n",
    );
    let planned = generate(&generated, &mut SmallRng::seed_from_u64(13));
    let templates = tally(&planned, |p| p.spec.labels.get("template").unwrap_or_default());
    assert!(near(templates["big"], 0.75, 1000, 0.05), "{templates:?}");
    for node in &planned {
        let labels = &node.spec.labels;
        assert_eq!(labels.get("generated"), Some("true"));
        assert!(
            node.spec.id.as_str().ends_with(&format!("-{:04}", labels.get("index").unwrap().parse::<u32>().unwrap()))
        );
        match labels.get("template") {
            Some("big") => {
                assert_eq!((node.spec.gpu_count, node.spec.gpu_type.as_str()), (8, "NVIDIA H200"));
                assert_eq!(node.spec.instance_type, "p5e.48xlarge");
                assert_eq!(labels.get("tier"), Some("premium"));
            }
            Some("small") => {
                assert_eq!((node.spec.gpu_count, node.spec.gpu_type.as_str()), (4, "NVIDIA A100-SXM4-40GB"));
                assert_eq!(node.spec.instance_type, "p4d.24xlarge", "Navarch's aws type for fewer than 8 GPUs");
                assert_eq!(labels.get("tier"), None);
            }
            other => panic!("{other:?}"),
        }
    }
}

/// The gaps between consecutive start times.
fn gaps(times: &[Duration]) -> Vec<f64> {
    times.windows(2).map(|w| (w[1] - w[0]).as_secs_f64()).collect()
}

#[test]
fn jitter_spreads_start_intervals_by_its_percentage() {
    let linear = |jitter: Option<f64>, pattern: Option<StartupPattern>| Startup {
        pattern,
        duration: Some(SimDuration(Duration::from_secs(100))),
        jitter_percent: jitter,
        ..Startup::default()
    };
    let mut rng = SmallRng::seed_from_u64(14);
    // 100 nodes over 100 s: 1 s apart, give or take the jitter.
    let exact = gaps(&start_times(100, &linear(Some(0.0), Some(StartupPattern::Linear)), &mut rng));
    assert!(exact.iter().all(|g| (g - 1.0).abs() < 1e-9), "{exact:?}");
    let wide = gaps(&start_times(100, &linear(Some(50.0), Some(StartupPattern::Linear)), &mut rng));
    assert!(wide.iter().all(|g| (0.5 - 1e-9..=1.5 + 1e-9).contains(g)), "{wide:?}");
    assert!(wide.iter().any(|g| *g < 0.75) && wide.iter().any(|g| *g > 1.25), "the whole ±50 % is used: {wide:?}");
    // A pattern given without jitter has none; no pattern at all is linear with Navarch's 10 %.
    let explicit = gaps(&start_times(100, &linear(None, Some(StartupPattern::Linear)), &mut rng));
    assert!(explicit.iter().all(|g| (g - 1.0).abs() < 1e-9));
    let default = gaps(&start_times(100, &linear(None, None), &mut rng));
    assert!(default.iter().all(|g| (0.9 - 1e-9..=1.1 + 1e-9).contains(g)), "{default:?}");
    assert!(default.iter().any(|g| (g - 1.0).abs() > 0.01), "jittered: {default:?}");
    // Jitter applies between waves too.
    let wave = Startup { batch_size: Some(10), ..linear(Some(20.0), Some(StartupPattern::Wave)) };
    let times = start_times(100, &wave, &mut rng);
    let wave_gaps: Vec<f64> = gaps(&times).into_iter().filter(|g| *g > 0.0).collect();
    assert_eq!(wave_gaps.len(), 9, "ten waves");
    assert!(wave_gaps.iter().all(|g| (8.0 - 1e-9..=12.0 + 1e-9).contains(g)), "10 s ± 20 %: {wave_gaps:?}");
}

#[test]
fn a_cold_start_range_without_a_mean_is_uniform_over_the_range() {
    let generated =
        fleet_gen("    total_nodes: 2000\n    startup: {pattern: instant, cold_start_min: 30s, cold_start_max: 2m}\n");
    let startup = generated.startup.clone().expect("startup");
    assert_eq!(startup.cold_start_mean, None);
    let planned = generate(&generated, &mut SmallRng::seed_from_u64(15));
    let starts: Vec<f64> = planned.iter().map(|p| p.start_at.as_secs_f64()).collect();
    assert!(starts.iter().all(|s| (30.0..120.0).contains(s)), "within [30 s, 2 m)");
    let mean = starts.iter().sum::<f64>() / starts.len() as f64;
    assert!((mean - 75.0).abs() < 3.0, "uniform: mean {mean}");
    let low = starts.iter().filter(|s| **s < 52.5).count();
    assert!((400..=600).contains(&low), "a quarter below 52.5 s: {low}");
    // Only a maximum: from zero.
    let only_max = Startup { cold_start_max: Some(SimDuration(Duration::from_secs(10))), ..Startup::default() };
    let mut rng = SmallRng::seed_from_u64(16);
    let draws: Vec<Duration> = (0..200).map(|_| cold_start(&only_max, &mut rng)).collect();
    assert!(draws.iter().all(|d| *d < Duration::from_secs(10)));
    assert!(draws.iter().any(|d| *d < Duration::from_secs(2)) && draws.iter().any(|d| *d > Duration::from_secs(8)));
    // Only a minimum: exactly that.
    let only_min = Startup { cold_start_min: Some(SimDuration(Duration::from_secs(7))), ..Startup::default() };
    assert_eq!(cold_start(&only_min, &mut rng), Duration::from_secs(7));
}
