//! The PyTorch conformance suite: every public op, layer, loss, optimizer and schedule
//! against fixtures written by PyTorch (`scripts/torch_fixtures/main.py`, run by hand; the
//! fixtures are committed, so this needs no PyTorch). One module per fixture family, each
//! with one test that runs every case of `tests/fixtures/<family>.safetensors` and lists
//! every disagreement. Each case states its tolerance in the fixture.

mod harness;

mod attention;
mod conv;
mod elementwise;
mod gradient;
mod index;
mod layout;
mod linalg;
mod loss;
mod matmul;
mod models;
mod norm;
mod optim;
mod pool;
mod reduce;
mod rnn;
mod schedule;

/// Every fixture file has a runner module here (an unread fixture would be a silent skip).
#[test]
fn every_fixture_family_has_a_runner() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let mut families = Vec::new();
    for e in std::fs::read_dir(root.join("fixtures")).expect("tests/fixtures") {
        let p = e.expect("entry").path();
        if p.extension().is_some_and(|x| x == "safetensors") {
            let stem = p.file_stem().unwrap().to_string_lossy().to_string();
            let runner = root.join("conformance").join(format!("{stem}.rs"));
            assert!(
                runner.exists(),
                "no tests/conformance/{stem}.rs for {}",
                p.display()
            );
            families.push(stem);
        }
    }
    assert!(!families.is_empty(), "no fixture files");
}
