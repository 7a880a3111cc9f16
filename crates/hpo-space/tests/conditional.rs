#![allow(clippy::unwrap_used)] // tests fail loudly on purpose
//! Conditional spaces: `when` on parameters and `forbid` on combinations.

use std::collections::BTreeSet;

use hpo_space::{Config, Space, Value};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn parse(text: &str) -> Result<Space, String> {
    Space::from_toml_str(text, "space.toml").map_err(|e| e.to_string())
}

/// An MLP whose per-layer widths depend on its depth, and an optimizer with its own settings.
const MLP: &str = r#"
layers = { randint = [1, 3] }
width_1 = { ordinal = [32, 64, 128] }
width_2 = { ordinal = [32, 64, 128], when = "layers >= 2" }
width_3 = { ordinal = [32, 64, 128], when = "layers >= 3" }
optimizer = { choice = ["sgd", "adam"] }
momentum = { uniform = [0.0, 0.99], when = "optimizer == 'sgd'" }
nesterov = { choice = [true, false], when = "optimizer == 'sgd' and momentum > 0.5" }
beta2 = { loguniform = [0.9, 0.9999], when = "optimizer in ['adam']" }
learning_rate = { loguniform = [1e-4, 1.0] }
forbid = ["optimizer == 'sgd' and learning_rate > 0.5"]
"#;

#[test]
fn ten_thousand_random_configs_are_all_valid_and_reach_every_branch() {
    let space = parse(MLP).unwrap();
    assert!(space.is_conditional());
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let (mut present, mut absent) = (BTreeSet::new(), BTreeSet::new());
    for _ in 0..10_000 {
        let config = space.sample(&mut rng);
        space.validate(&config).unwrap();
        let sgd = config.str("optimizer").unwrap() == "sgd";
        assert_eq!(config.get("momentum").is_some(), sgd);
        assert_eq!(config.get("beta2").is_some(), !sgd);
        assert_eq!(config.get("nesterov").is_some(), sgd && config.f64("momentum").unwrap() > 0.5);
        assert_eq!(config.get("width_3").is_some(), config.i64("layers").unwrap() == 3);
        assert!(!(sgd && config.f64("learning_rate").unwrap() > 0.5), "forbidden: {config}");
        for (name, _) in space.params() {
            if config.get(name).is_some() {
                present.insert(name.to_owned())
            } else {
                absent.insert(name.to_owned())
            };
        }
    }
    let all: BTreeSet<String> = space.params().map(|(n, _)| n.to_owned()).collect();
    assert_eq!(present, all, "every parameter is active sometimes");
    let conditional: BTreeSet<String> =
        ["width_2", "width_3", "momentum", "nesterov", "beta2"].into_iter().map(String::from).collect();
    assert_eq!(absent, conditional, "every conditional parameter is inactive sometimes, the others never");
}

#[test]
fn a_conditional_grid_lists_each_valid_combination_once() {
    // sgd: 3 momenta x (1 layer + 2 layers x 2 widths) = 15; adam: 2 betas x 1 layer (2 layers
    // with adam are forbidden) = 2. 17 in all.
    let space = parse(
        r#"
optimizer = { choice = ["sgd", "adam"] }
momentum = { finrange = [0.0, 0.9, 3], when = "optimizer == 'sgd'" }
beta = { ordinal = [0.9, 0.99], when = "optimizer == 'adam'" }
layers = { ordinal = [1, 2] }
width_2 = { ordinal = [32, 64], when = "layers == 2" }
forbid = ["optimizer == 'adam' and layers == 2"]
"#,
    )
    .unwrap();
    let grid = space.grid(5).unwrap();
    assert_eq!(grid.len(), 3 * 3 + 2);
    assert_eq!(space.size(), Some(11));
    let configs: Vec<Config> = grid.iter().collect();
    let distinct: BTreeSet<String> = configs.iter().map(Config::to_string).collect();
    assert_eq!(distinct.len(), configs.len());
    for config in &configs {
        space.validate(config).unwrap();
    }
    assert_eq!(grid.get(11), None);
}

#[test]
fn validation_names_the_line_and_what_was_expected() {
    let err = |text: &str| parse(text).unwrap_err();
    let opt = "optimizer = { choice = [\"sgd\", \"adam\"] }\n";
    // An unknown parameter.
    let e = err(&format!("{opt}momentum = {{ uniform = [0.0, 0.9], when = \"optimiser == 'sgd'\" }}\n"));
    assert!(e.starts_with("space.toml:2: search space parameter `momentum`: `when = \"optimiser == 'sgd'\"`"), "{e}");
    assert!(e.contains("`optimiser` is not a parameter of the space"), "{e}");
    // A cycle.
    let e = err("a = { randint = [0, 3], when = \"b > 1\" }\nb = { randint = [0, 3], when = \"a > 1\" }\n");
    assert!(e.contains("form a cycle: a → b → a") || e.contains("form a cycle: b → a → b"), "{e}");
    let e = err("a = { randint = [0, 3], when = \"a > 1\" }\n");
    assert!(e.contains("cannot depend on itself"), "{e}");
    // A comparison of the wrong type.
    let e = err(&format!("{opt}m = {{ uniform = [0.0, 0.9], when = \"optimizer > 2\" }}\n"));
    assert!(e.contains("`optimizer` takes values that are not numbers: compare it with == or in, not >"), "{e}");
    let e = err("lr = { uniform = [0.0, 0.9] }\nm = { uniform = [0.0, 0.9], when = \"lr == 0.1\" }\n");
    assert!(e.contains("`lr` is continuous"), "{e}");
    let e = err("lr = { uniform = [0.0, 0.9] }\nm = { uniform = [0.0, 0.9], when = \"lr < 'x'\" }\n");
    assert!(e.contains("`lr` is a number: `lr < 'x'`"), "{e}");
    // A value outside the parent's domain.
    let e = err(&format!("{opt}m = {{ uniform = [0.0, 0.9], when = \"optimizer in ['sgd', 'adamw']\" }}\n"));
    assert!(e.contains("'adamw' is not a value of `optimizer` ({\"choice\":[\"sgd\",\"adam\"]})"), "{e}");
    // A branch that can never be active: by itself, or because of its parent's condition.
    let e = err("n = { randint = [1, 3] }\nw = { randint = [1, 9], when = \"n > 3\" }\n");
    assert!(e.starts_with("space.toml:2: search space parameter `w`") && e.contains("can never hold"), "{e}");
    let e = err(&format!(
        "{opt}m = {{ uniform = [0.0, 0.9], when = \"optimizer == 'sgd'\" }}\nn = {{ uniform = [0.0, 1.0], when = \"m > 0.5 and optimizer == 'adam'\" }}\n"
    ));
    assert!(e.contains("parameter `n`") && e.contains("can never hold"), "{e}");
    // Forbid clauses that exclude the whole space, or nothing.
    let e = err("x = { uniform = [0.0, 1.0] }\nforbid = [\"x < 0.6\", \"x >= 0.6\"]\n");
    assert!(e.starts_with("space.toml:2: search space parameter `forbid`: the clauses forbid 10000 of 10000"), "{e}");
    let e = err("x = { uniform = [0.0, 1.0] }\nforbid = [\"x > 2\"]\n");
    assert!(e.contains("`x > 2` can never hold: it forbids nothing"), "{e}");
    let e = err("x = { uniform = [0.0, 1.0] }\nforbid = [\"x >\"]\n");
    assert!(e.contains("`forbid`: `x >`: expected a value"), "{e}");
    let e = err("x = { uniform = [0.0, 1.0], when = 3 }\n");
    assert!(e.contains("`when` is a condition such as"), "{e}");
}

#[test]
fn a_config_must_hold_exactly_the_active_parameters_and_no_forbidden_combination() {
    let space = parse(MLP).unwrap();
    let mut config = space.sample(&mut ChaCha8Rng::seed_from_u64(3));
    config.insert("optimizer", "adam");
    config.remove("momentum");
    config.remove("nesterov");
    config.insert("beta2", 0.99);
    config.insert("learning_rate", 0.6);
    space.validate(&config).unwrap();
    let mut with_momentum = config.clone();
    with_momentum.insert("momentum", 0.9);
    let e = space.validate(&with_momentum).unwrap_err().to_string();
    assert!(
        e.contains("`momentum`: is in the config, but inactive: its condition `optimizer == 'sgd'` does not hold"),
        "{e}"
    );
    let mut sgd = config.clone();
    sgd.remove("beta2");
    sgd.insert("optimizer", "sgd");
    sgd.insert("momentum", 0.1);
    let e = space.validate(&sgd).unwrap_err().to_string();
    assert!(e.contains("forbidden by `optimizer == 'sgd' and learning_rate > 0.5`"), "{e}");
    sgd.remove("momentum");
    sgd.insert("learning_rate", 0.1);
    assert!(space.validate(&sgd).unwrap_err().to_string().contains("`momentum`: missing from the config"));
}

#[test]
fn conditions_survive_json_and_the_builder_builds_the_same_space() {
    let space = parse(MLP).unwrap();
    let json = space.to_json();
    assert_eq!(json["momentum"]["when"], "optimizer == 'sgd'");
    assert_eq!(json["forbid"][0], "optimizer == 'sgd' and learning_rate > 0.5");
    assert_eq!(Space::from_json(&json).unwrap(), space);
    let built = Space::builder()
        .randint("layers", 1, 3)
        .ordinal("width_1", [32, 64, 128])
        .ordinal("width_2", [32, 64, 128])
        .ordinal("width_3", [32, 64, 128])
        .choice("optimizer", ["sgd", "adam"])
        .uniform("momentum", 0.0, 0.99)
        .choice("nesterov", [true, false])
        .loguniform("beta2", 0.9, 0.9999)
        .loguniform("learning_rate", 1e-4, 1.0)
        .when("width_2", "layers >= 2")
        .when("width_3", "layers >= 3")
        .when("momentum", "optimizer == 'sgd'")
        .when("nesterov", "optimizer == 'sgd' and momentum > 0.5")
        .when("beta2", "optimizer in ['adam']")
        .forbid("optimizer == 'sgd' and learning_rate > 0.5")
        .build()
        .unwrap();
    assert_eq!(built, space);
    let e = Space::builder().uniform("x", 0.0, 1.0).when("y", "x > 0.5").build().unwrap_err();
    assert!(e.to_string().contains("`y`: has a condition but is not a parameter of the space"));
    // A flat space draws exactly as before: one value per parameter, in name order.
    let flat = parse("b = { uniform = [0.0, 1.0] }\na = { randint = [0, 9] }\n").unwrap();
    let config = flat.sample(&mut ChaCha8Rng::seed_from_u64(5));
    assert_eq!(config.len(), 2);
    assert!(matches!(config.get("a"), Some(Value::Int(_))));
}

#[test]
fn an_inactive_parameter_encodes_apart_and_decodes_to_nothing() {
    let space = parse(MLP).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    for _ in 0..1000 {
        let config = space.sample(&mut rng);
        let encoded = space.encode(&config);
        assert_eq!(encoded.len(), space.encoded_dim());
        let decoded = space.decode(&encoded);
        let names = |c: &Config| c.iter().map(|(k, _)| k.to_owned()).collect::<Vec<_>>();
        assert_eq!(names(&decoded), names(&config), "the same parameters active");
        // Exact for every finite domain, and the encoding is a fixed point of snap.
        for name in ["layers", "width_1", "width_2", "width_3", "optimizer", "nesterov"] {
            assert_eq!(decoded.get(name), config.get(name));
        }
        assert_eq!(space.snap(&encoded), space.encode(&decoded));
        // momentum's coordinate: INACTIVE exactly when adam is chosen.
        let sgd = config.str("optimizer").unwrap() == "sgd";
        let at = space.params().take_while(|(n, _)| *n != "momentum").map(|(_, d)| d.encoded_dim()).sum::<usize>();
        assert_eq!(encoded[at] == Space::INACTIVE, !sgd);
        let drawn = space.sample_encoded(&mut rng);
        space.validate(&space.decode(&drawn)).unwrap();
    }
}

#[test]
fn a_conditional_grid_too_large_to_list_says_so() {
    let space = parse("a = { randint = [0, 2000] }\nb = { randint = [0, 2000], when = \"a > 0\" }\n").unwrap();
    assert_eq!(space.size(), None, "2,000 x 2,001 + 1 valid configs: more than a grid lists");
    let e = space.grid(10).map(|g| g.len());
    assert_eq!(e.unwrap(), 10 * 10 - 9, "a = 0 leaves b out: 9 of the 10 x 10 combinations are one");
    let e = space.grid(usize::MAX).unwrap_err().to_string();
    assert!(e.contains("more than 1000000 configs to list"), "{e}");
    assert!(space.every_config().is_none());
}
