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
