//! `mpirun -np 2 lenet_mnist --distributed` (feature `mpi`): both ranks train, one set of
//! metrics comes out, rank 0 alone writes, and the figures are the two ranks' together.

use std::path::PathBuf;
use std::process::Command;

/// The example binary next to this test's (`target/<profile>/examples/NAME`), built with
/// the `mpi` feature by `cargo build --profile test --features mpi --example lenet_mnist`
/// (`cargo test --example` would build it as a test, elsewhere).
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let bin = dir.join("examples").join(name);
    assert!(
        bin.is_file(),
        "{} is missing: run cargo build --profile test --features mpi --example lenet_mnist \
         first",
        bin.display()
    );
    bin
}

#[test]
fn lenet_trains_on_two_ranks_and_reports_once() {
    let out = std::env::temp_dir().join(format!("cinder-ddp-lenet-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let run = Command::new("mpirun")
        .args([
            "-np",
            "2",
            "--allow-run-as-root",
            "--oversubscribe",
            "--bind-to",
            "none",
            "--mca",
            "btl",
            "self,tcp",
            "--mca",
            "btl_tcp_if_include",
            "lo",
            "--mca",
            "oob_tcp_if_include",
            "lo",
        ])
        .arg(example("lenet_mnist"))
        .args(["--distributed", "--limit", "1200", "--test-limit", "300"])
        .args(["--epochs", "2", "--batch-size", "32", "--out"])
        .arg(&out)
        .output()
        .expect("mpirun (scripts/setup.sh --mpi installs Open MPI)");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stdout}\n{stderr}");
    // One rank speaks: one header, one line per epoch, one JSON line, last.
    assert_eq!(stdout.matches("lenet5: ").count(), 1, "{stdout}");
    assert_eq!(stdout.matches("epoch  1:").count(), 1, "{stdout}");
    let last = stdout.lines().last().unwrap();
    let m: serde_json::Value = serde_json::from_str(last).expect("a JSON last line");
    assert_eq!(stdout.lines().filter(|l| l.starts_with('{')).count(), 1);
    assert_eq!(m["world_size"], 2);
    assert_eq!(m["batch_size_per_rank"], 32);
    // 1080 training images: 540 per rank, 17 steps of 32 per epoch, one allreduce each
    // (LeNet-5's 241 KiB of gradients fit one 25 MiB bucket).
    assert_eq!(m["allreduces"], 2 * 17);
    assert_eq!(m["train_images"], 1080);
    let history = std::fs::read_to_string(out.join("metrics.json")).unwrap();
    let h: serde_json::Value = serde_json::from_str(&history).unwrap();
    let epochs = h["history"].as_array().unwrap();
    assert_eq!(epochs.len(), 2);
    // Training figures over both shards: 2 x 17 x 32 = 1088 examples per epoch (the padded
    // sampler repeats 8 of 1080).
    let acc = m["test_accuracy"].as_f64().unwrap();
    assert!(
        acc > 0.5,
        "test accuracy {acc} after two epochs on 1080 images"
    );
    let (l1, l2) = (
        epochs[0]["train_loss"].as_f64().unwrap(),
        epochs[1]["train_loss"].as_f64().unwrap(),
    );
    assert!(l2 < l1, "training loss {l1} then {l2}");
    for f in [
        "best.safetensors",
        "last.safetensors",
        "curves.png",
        "metrics.json",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    std::fs::remove_dir_all(&out).unwrap();
}
