//! Vector metrics against numpy references.

mod common;

use brainrecon_metrics::vector;
use common::{assert_close, load};
use serde::Deserialize;

#[derive(Deserialize)]
struct Fixture {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    a: Vec<f32>,
    b: Vec<f32>,
    expected: Expected,
}

#[derive(Deserialize)]
struct Expected {
    mse: f64,
    pearson: f64,
    cosine_similarity: f64,
}

#[test]
fn vector_metrics_match_numpy() {
    let fx: Fixture = load("vector_metrics.json");
    assert!(!fx.cases.is_empty());
    for c in &fx.cases {
        let n = &c.name;
        assert_close(
            &format!("{n} mse"),
            vector::mse(&c.a, &c.b).unwrap(),
            c.expected.mse,
            1e-12,
        );
        assert_close(
            &format!("{n} pearson"),
            vector::pearson(&c.a, &c.b).unwrap(),
            c.expected.pearson,
            1e-12,
        );
        assert_close(
            &format!("{n} cosine"),
            vector::cosine_similarity(&c.a, &c.b).unwrap(),
            c.expected.cosine_similarity,
            1e-12,
        );
    }
}
