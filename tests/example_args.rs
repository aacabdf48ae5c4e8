//! The examples' shared command line: values that would measure nothing are refused,
//! defaults, `--resume` where it is not supported, and the atomic metrics.json write.

#[path = "../examples/common/mod.rs"]
mod common;

use clap::Parser;
use common::{Args, DEFAULT_EPOCHS, write_json};

fn parse(flags: &[&str]) -> Result<Args, String> {
    Args::try_parse_from(std::iter::once("example").chain(flags.iter().copied()))
        .map_err(|e| e.to_string())
}

#[test]
fn values_that_would_measure_nothing_are_refused() {
    for (flags, want) in [
        (
            &["--epochs", "0"][..],
            "invalid value '0' for '--epochs <EPOCHS>': must be at least 1",
        ),
        (
            &["--limit", "0"],
            "invalid value '0' for '--limit <LIMIT>': must be at least 1",
        ),
        (
            &["--test-limit", "0"],
            "for '--test-limit <TEST_LIMIT>': must be at least 1",
        ),
        (
            &["--batch-size", "0"],
            "for '--batch-size <BATCH_SIZE>': must be at least 1",
        ),
        (
            &["--latent", "0"],
            "for '--latent <LATENT>': must be at least 1",
        ),
        (&["--val-fraction", "0"], "must be strictly between 0 and 1"),
        (&["--val-fraction", "1"], "must be strictly between 0 and 1"),
        (
            &["--val-fraction", "NaN"],
            "must be strictly between 0 and 1",
        ),
        (&["--val-fraction=-0.5"], "must be strictly between 0 and 1"),
        (&["--lr=-1"], "must be a finite number, at least 0"),
        (&["--lr", "inf"], "must be a finite number, at least 0"),
        (&["--limit", "ten"], "`ten` is not a whole number"),
    ] {
        let e = parse(flags).expect_err(&format!("{flags:?} accepted"));
        assert!(e.contains(want), "{flags:?}: {e}");
    }
}

#[test]
fn accepted_values_and_defaults() {
    let a = parse(&[]).unwrap();
    assert_eq!((a.epochs, a.epochs()), (None, DEFAULT_EPOCHS));
    assert_eq!((a.batch_size, a.patience, a.val_fraction), (64, 3, 0.1));
    let a = parse(&[
        "--epochs",
        "1",
        "--limit",
        "1",
        "--test-limit",
        "1",
        "--val-fraction",
        "0.5",
        "--patience",
        "0",
        "--lr",
        "0",
    ])
    .unwrap();
    assert_eq!(a.epochs(), 1);
    assert_eq!((a.limit, a.test_limit, a.patience), (Some(1), Some(1), 0));
    assert_eq!((a.val_fraction, a.lr), (0.5, Some(0.0)));
    // --resume is refused by the examples that cannot resume, accepted otherwise
    let r = parse(&["--resume"]).unwrap();
    let e = r.refuse_resume("vae").unwrap_err().to_string();
    assert!(
        e.starts_with("--resume: vae does not save a training state"),
        "{e}"
    );
    parse(&[]).unwrap().refuse_resume("vae").unwrap();
}

#[test]
fn metrics_json_is_replaced_whole_and_stale_temp_files_go() {
    let dir = std::env::temp_dir().join(format!("cinder-example-args-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("metrics.json");
    // a temp file of a writer that has exited
    let mut dead = std::process::Command::new("true").spawn().unwrap();
    let pid = dead.id();
    dead.wait().unwrap();
    std::fs::write(dir.join(format!(".metrics.json.tmp-{pid}-0")), b"{\"trunc").unwrap();
    write_json(&path, &serde_json::json!({"a": 1})).unwrap();
    write_json(&path, &serde_json::json!({"a": 2, "history": [1, 2]})).unwrap();
    let back: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(back, serde_json::json!({"a": 2, "history": [1, 2]}));
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["metrics.json".to_string()]);
    // a file that cannot be written is an error naming it
    let e = write_json(
        &dir.join("no-such-dir").join("m.json"),
        &serde_json::json!(1),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("no-such-dir/m.json"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}
