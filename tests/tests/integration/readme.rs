#![allow(clippy::unwrap_used)] // tests fail loudly on purpose
//! The README's "Tuning a Rust function" example: the README shows
//! `examples/tune-a-function/src/main.rs` verbatim, and this test runs that very file.

mod example {
    include!("../../../examples/tune-a-function/src/main.rs");

    pub fn run() -> Result<(), Box<dyn std::error::Error>> {
        main()
    }
}

#[test]
fn the_readme_shows_the_example_as_it_is() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let main = std::fs::read_to_string(root.join("examples/tune-a-function/src/main.rs")).unwrap();
    assert!(readme.contains(&format!("```rust\n{main}```")), "README.md must show the example's main.rs verbatim");
    let manifest = std::fs::read_to_string(root.join("examples/tune-a-function/Cargo.toml")).unwrap();
    for dependency in ["hpo-core", "hpo-backends", "hpo-schedulers", "tokio"] {
        assert!(manifest.contains(dependency) && readme.contains(&format!("{dependency} = ")), "{dependency}");
    }
}

#[test]
fn the_readme_example_runs() {
    example::run().unwrap();
}
