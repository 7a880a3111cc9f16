#![allow(clippy::unwrap_used)] // tests fail loudly on purpose
use hpo_space::{Config, Domain, Space, Value};
use proptest::prelude::*;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn parse(text: &str) -> Result<Space, String> {
    Space::from_toml_str(text, "space.toml").map_err(|e| e.to_string())
}

#[test]
fn parses_every_domain_from_toml() {
    let space = parse(
        r#"
learning_rate = { loguniform = [1e-4, 1e-1] }
momentum = { uniform = [0, 0.99] }
batch_size = { randint = [32, 256] }
units = { lograndint = [32, 1024] }
act = { choice = ["relu", "tanh"] }
size = { ordinal = [16, 32, 64] }
dropout = { finrange = [0.0, 0.5, 6] }
wd = { logfinrange = [1e-5, 1e-1, 5] }
max_epochs = 10
"#,
    )
    .unwrap();
    assert_eq!(space.len(), 9);
    assert_eq!(space.get("max_epochs"), Some(&Domain::Constant(Value::Int(10))));
    assert_eq!(space.get("momentum"), Some(&Domain::Uniform { low: 0.0, high: 0.99 }));
    assert_eq!(space.get("units"), Some(&Domain::LogRandInt { low: 32, high: 1024 }));
    // one-hot over 2 for `act`, one coordinate for each other non-constant
    assert_eq!(space.encoded_dim(), 9);
}

#[test]
fn same_space_from_json_and_back() {
    let space = parse("lr = { loguniform = [1e-4, 1e-1] }\nact = { choice = [\"relu\", \"tanh\"] }\nn = 3").unwrap();
    let again = Space::from_json(&space.to_json()).unwrap();
    assert_eq!(space, again);
}

#[test]
fn builder_matches_parsed_space() {
    let built = Space::builder()
        .loguniform("lr", 1e-4, 1e-1)
        .randint("batch_size", 32, 256)
        .choice("act", ["relu", "tanh"])
        .constant("max_epochs", 10)
        .build()
        .unwrap();
    let parsed = parse(
        "lr = { loguniform = [1e-4, 1e-1] }\nbatch_size = { randint = [32, 256] }\nact = { choice = [\"relu\", \"tanh\"] }\nmax_epochs = 10",
    )
    .unwrap();
    assert_eq!(built, parsed);
    let err = Space::builder().uniform("x", 1.0, 0.0).build().unwrap_err();
    assert_eq!(err.param, "x");
    let err = Space::builder().uniform("x", 0.0, 1.0).randint("x", 0, 1).build().unwrap_err();
    assert!(err.to_string().contains("defined twice"), "{err}");
}

#[test]
fn bad_spaces_name_parameter_file_line_and_expectation() {
    let cases = [
        ("a = 1\nlr = { uniform = [1, 0] }", "space.toml:2: search space parameter `lr`: `uniform` needs low < high"),
        (
            "\n\nlr = { loguniform = [0, 1] }",
            "space.toml:3: search space parameter `lr`: `loguniform` is on a log scale and needs 0 < low",
        ),
        ("n = { lograndint = [0, 8] }", "space.toml:1: search space parameter `n`: `lograndint` is on a log scale"),
        ("act = { choice = [] }", "space.toml:1: search space parameter `act`: `choice` needs at least one value"),
        (
            "x = { normal = [0, 1] }",
            "space.toml:1: search space parameter `x`: unknown keyword `normal`; expected one of uniform",
        ),
        (
            "b = { randint = [1.5, 3] }",
            "space.toml:1: search space parameter `b`: `randint` expects two integers [low, high], got [1.5,3]",
        ),
        ("b = { uniform = \"wide\" }", "search space parameter `b`: `uniform` expects a list"),
        ("b = { uniform = [1] }", "`uniform` expects two numbers [low, high]"),
        ("b = [1, 2]", "got a bare list"),
        ("b = { uniform = [0, 1], randint = [0, 1] }", "expected exactly one keyword"),
        ("f = { finrange = [0, 1, 1] }", "`finrange` needs a size of at least 2"),
    ];
    for (text, expected) in cases {
        let err = parse(text).unwrap_err();
        assert!(err.contains(expected), "for {text:?}:\n  got      {err}\n  expected {expected}");
    }
}

#[test]
fn validate_names_the_parameter() {
    let space = parse("x = { uniform = [0, 1] }\nn = { randint = [1, 3] }").unwrap();
    let good: Config = [("x", Value::Float(0.5)), ("n", Value::Int(2))].into_iter().collect();
    space.validate(&good).unwrap();
    let out_of_range: Config = [("x", Value::Float(1.5)), ("n", Value::Int(2))].into_iter().collect();
    assert_eq!(space.validate(&out_of_range).unwrap_err().param, "x");
    let missing: Config = [("x", Value::Float(0.5))].into_iter().collect();
    assert!(space.validate(&missing).unwrap_err().to_string().contains("`n`: missing"));
    let extra: Config = [("x", Value::Float(0.5)), ("n", Value::Int(2)), ("y", Value::Int(0))].into_iter().collect();
    assert_eq!(space.validate(&extra).unwrap_err().param, "y");
    let wrong_type: Config = [("x", Value::Float(0.5)), ("n", Value::Float(2.5))].into_iter().collect();
    assert_eq!(space.validate(&wrong_type).unwrap_err().param, "n");
}

#[test]
fn encodings_by_hand() {
    let mut out = Vec::new();
    // integers widened by half a step: 1, 2, 3 own [0,1/3), [1/3,2/3), [2/3,1]
    let randint = Domain::RandInt { low: 1, high: 3 };
    for (v, expected) in [(1, 1.0 / 6.0), (2, 0.5), (3, 5.0 / 6.0)] {
        out.clear();
        randint.encode(&Value::Int(v), &mut out);
        assert!((out[0] - expected).abs() < 1e-12);
    }
    assert_eq!(randint.decode(&[0.0]), Value::Int(1));
    assert_eq!(randint.decode(&[0.34]), Value::Int(2));
    assert_eq!(randint.decode(&[1.0]), Value::Int(3));
    // log scale: the geometric middle encodes to 0.5
    out.clear();
    Domain::LogUniform { low: 1e-4, high: 1.0 }.encode(&Value::Float(1e-2), &mut out);
    assert!((out[0] - 0.5).abs() < 1e-12);
    // one-hot
    out.clear();
    Domain::Choice(vec!["a".into(), "b".into(), "c".into()]).encode(&"b".into(), &mut out);
    assert_eq!(out, vec![0.0, 1.0, 0.0]);
    assert_eq!(Domain::Choice(vec!["a".into(), "b".into()]).decode(&[0.2, 0.7]), Value::from("b"));
    // ordinal by position, widened like integers
    out.clear();
    Domain::Ordinal(vec![16.into(), 32.into(), 64.into(), 128.into()]).encode(&Value::Int(64), &mut out);
    assert_eq!(out, vec![0.625]);
}

#[test]
fn grids() {
    let space = parse("x = { uniform = [0, 1] }\nlr = { loguniform = [1e-3, 1e-1] }\nact = { choice = [\"a\", \"b\"] }\nn = { randint = [1, 2] }\nc = 7")
        .unwrap();
    let grid = space.grid(3).unwrap();
    assert_eq!(grid.len(), 3 * 3 * 2 * 2);
    let configs: Vec<Config> = grid.iter().collect();
    assert_eq!(configs.len(), 36);
    for (i, a) in configs.iter().enumerate() {
        space.validate(a).unwrap();
        assert!(configs[i + 1..].iter().all(|b| a != b), "grid repeats {a}");
    }
    let lrs: Vec<f64> = space.get("lr").unwrap().grid_axis(3).unwrap().values().map(|v| v.as_f64().unwrap()).collect();
    assert!((lrs[0] - 1e-3).abs() < 1e-15 && (lrs[1] - 1e-2).abs() < 1e-12 && (lrs[2] - 1e-1).abs() < 1e-15);
    assert_eq!(Domain::FinRange { low: 0.0, high: 1.0, size: 5 }.grid_axis(2).unwrap().len(), 5);
}

fn domain_strategy() -> impl Strategy<Value = Domain> {
    prop_oneof![
        (-1e3..1e3f64, 1e-3..1e3f64).prop_map(|(low, w)| Domain::Uniform { low, high: low + w }),
        (1e-8..1e3f64, 1.001..1e4f64).prop_map(|(low, f)| Domain::LogUniform { low, high: low * f }),
        (-1000..1000i64, 1..1000i64).prop_map(|(low, w)| Domain::RandInt { low, high: low + w }),
        (1..1000i64, 1..100_000i64).prop_map(|(low, w)| Domain::LogRandInt { low, high: low + w }),
        proptest::collection::vec("[a-z]{1,6}", 1..6).prop_map(|v| {
            let mut v: Vec<Value> = v.into_iter().map(Value::from).collect();
            v.dedup();
            Domain::Choice(v)
        }),
        proptest::collection::btree_set(-100..100i64, 1..6)
            .prop_map(|v| Domain::Ordinal(v.into_iter().map(Value::Int).collect())),
        (-10.0..10.0f64, 0.1..10.0f64, 2..20usize).prop_map(|(low, w, size)| Domain::FinRange {
            low,
            high: low + w,
            size
        }),
        (1e-6..1.0f64, 1.5..1e4f64, 2..20usize).prop_map(|(low, f, size)| Domain::LogFinRange {
            low,
            high: low * f,
            size
        }),
        (-5..5i64).prop_map(|c| Domain::Constant(Value::Int(c))),
    ]
}

fn close(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Float(x), Value::Float(y)) => (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1e-12),
        _ => a == b,
    }
}

proptest! {
    #[test]
    fn samples_lie_in_their_domain(domain in domain_strategy(), seed in any::<u64>()) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        for _ in 0..20 {
            let v = domain.sample(&mut rng);
            prop_assert!(domain.validate(&v).is_ok(), "{v:?} outside {domain:?}");
        }
    }

    #[test]
    fn decode_inverts_encode(domain in domain_strategy(), seed in any::<u64>()) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        for _ in 0..20 {
            let v = domain.sample(&mut rng);
            let mut coords = Vec::new();
            domain.encode(&v, &mut coords);
            prop_assert_eq!(coords.len(), domain.encoded_dim());
            prop_assert!(coords.iter().all(|c| (0.0..=1.0).contains(c)));
            let back = domain.decode(&coords);
            prop_assert!(close(&back, &v), "{:?} -> {:?} -> {:?}", v, coords, back);
        }
    }

    #[test]
    fn decoding_any_point_gives_a_valid_config(coords in proptest::collection::vec(0.0..=1.0f64, 7)) {
        let space = Space::builder()
            .uniform("a", -1.0, 1.0)
            .loguniform("b", 1e-4, 1.0)
            .randint("c", 0, 9)
            .lograndint("d", 1, 512)
            .choice("e", ["x", "y"])
            .ordinal("f", [1, 2, 4])
            .constant("g", "k")
            .build()
            .unwrap();
        prop_assert_eq!(space.encoded_dim(), 7);
        let config = space.decode(&coords);
        prop_assert!(space.validate(&config).is_ok());
        prop_assert_eq!(space.snap(&coords), space.encode(&config));
    }

    #[test]
    fn sample_encoded_and_snap_skip_the_config_not_the_numbers(seed in any::<u64>()) {
        let space = Space::builder()
            .uniform("a", -1.0, 1.0)
            .loguniform("b", 1e-4, 1.0)
            .lograndint("d", 1, 512)
            .choice("e", ["x", "y", "z"])
            .ordinal("o", [1, 2, 4, 8])
            .finrange("f", 0.0, 1.0, 5)
            .logfinrange("h", 1e-3, 1.0, 4)
            .constant("g", "k")
            .build()
            .unwrap();
        let (mut one, mut other) = (ChaCha8Rng::seed_from_u64(seed), ChaCha8Rng::seed_from_u64(seed));
        let mut points = ChaCha8Rng::seed_from_u64(seed ^ 1);
        for _ in 0..20 {
            prop_assert_eq!(space.sample_encoded(&mut one), space.encode(&space.sample(&mut other)));
            let coords: Vec<f64> = (0..space.encoded_dim()).map(|_| points.random::<f64>() * 1.2 - 0.1).collect();
            prop_assert_eq!(space.snap(&coords), space.encode(&space.decode(&coords)));
        }
    }
}

#[test]
fn huge_finite_domains_are_never_listed() {
    // Full-width i64 and a range of 1e11 values: counted, encoded and indexed without a list.
    let full = Domain::RandInt { low: i64::MIN, high: i64::MAX };
    assert_eq!(full.cardinality(), None, "2^64 values do not fit a usize");
    let mut out = Vec::new();
    full.encode(&Value::Int(i64::MAX), &mut out);
    assert!(out[0] > 0.99 && out[0] <= 1.0);
    assert_eq!(full.decode(&[1.0]), Value::Int(i64::MAX));
    assert_eq!(full.decode(&[0.0]), Value::Int(i64::MIN));
    let range = Domain::FinRange { low: 0.0, high: 1.0, size: 100_000_000_001 };
    let axis = range.grid_axis(usize::MAX).unwrap();
    assert_eq!(axis.len(), 100_000_000_001);
    let value = axis.get(12_345_678_901);
    range.validate(&value).unwrap();
    assert!(range.validate(&Value::Float(0.5 + 5e-12)).is_err(), "between two grid values");
    let space =
        Space::builder().randint("seed", 0, 2_000_000_000).finrange("r", 0.0, 1.0, 1_000_000_001).build().unwrap();
    assert_eq!(space.size(), Some(2_000_000_001usize * 1_000_000_001));
    let grid = space.every_config().unwrap();
    let last = grid.get(grid.len() - 1).unwrap();
    assert_eq!(last.get("seed"), Some(&Value::Int(2_000_000_000)));
    assert_eq!(last.get("r"), Some(&Value::Float(1.0)));
}

#[test]
fn a_grid_too_large_to_enumerate_names_the_parameter() {
    let space = Space::builder().randint("a", 0, i64::MAX - 1).randint("b", 0, i64::MAX - 1).build().unwrap();
    assert_eq!(space.size(), None);
    assert!(space.every_config().is_none());
    let err = space.grid(usize::MAX).unwrap_err();
    assert_eq!(err.param, "b");
    assert!(err.to_string().contains("too large to enumerate"), "{err}");
    // With 5 points per numeric parameter, the same space is a grid of 25.
    assert_eq!(space.grid(5).unwrap().len(), 25);
    let err = Space::builder().lograndint("w", 1, i64::MAX / 2).build().unwrap().grid(10_000_000).unwrap_err();
    assert_eq!(err.param, "w", "{err}");
}
