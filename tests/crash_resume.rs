//! Crash consistency of the examples' checkpoints: the `lenet_mnist` example (the binary
//! cargo builds with the tests: run this through `cargo test -p cinder` or `cargo test
//! --workspace`, which build the examples first) is killed with SIGKILL while it saves a
//! checkpoint and while it trains, on 300 Fashion-MNIST images, then resumed; after every
//! kill both checkpoints read back whole, the stale temp files of the killed writers are
//! gone after the next save, and the resumed run ends with exactly the bytes, history and
//! test figures of a run that was never interrupted.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use cinder::nn::checkpoint::{self, FileDType, HostData};
use serde_json::Value;

const EPOCHS: usize = 4;
/// Long enough for a slow, busy machine; a run takes a few seconds on lavapipe.
const DEADLINE: Duration = Duration::from_secs(600);

/// The example binary next to this test's (`target/<profile>/examples/NAME`).
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let bin = dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "{} is missing: run this test through `cargo test -p cinder` or `cargo test \
         --workspace` (they build the examples), or build it with `cargo build --profile test \
         --example {name}`",
        bin.display()
    );
    bin
}

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("cinder-crash-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    fn temp_files(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".tmp-"))
            .collect();
        v.sort();
        v
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running example whose stdout and stderr lines arrive on one channel.
struct Run {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

fn start(out: &Path, resume: bool, pause: Option<&str>) -> Run {
    let mut cmd = Command::new(example("lenet_mnist"));
    cmd.args(["--limit", "300", "--test-limit", "100", "--seed", "5"])
        .args(["--epochs", &EPOCHS.to_string()])
        .arg("--out")
        .arg(out)
        .env("RUST_BACKTRACE", "0")
        .env_remove("CINDER_PAUSE_BEFORE_COMMIT")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if resume {
        cmd.arg("--resume");
    }
    if let Some(p) = pause {
        cmd.env("CINDER_PAUSE_BEFORE_COMMIT", p);
    }
    let mut child = cmd.spawn().unwrap();
    let (tx, lines) = channel();
    let pipes: [Box<dyn Read + Send>; 2] = [
        Box::new(child.stdout.take().unwrap()),
        Box::new(child.stderr.take().unwrap()),
    ];
    for pipe in pipes {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
    }
    Run {
        child,
        lines,
        seen: Vec::new(),
    }
}

impl Run {
    /// Waits for a line containing `needle`.
    fn wait_for(&mut self, needle: &str) {
        let end = Instant::now() + DEADLINE;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let hit = line.contains(needle);
                    self.seen.push(line);
                    if hit {
                        return;
                    }
                }
                Err(_) => {
                    let _ = self.child.kill();
                    panic!(
                        "no line with {needle:?} from the example; it printed:\n{}",
                        self.seen.join("\n")
                    );
                }
            }
        }
    }

    /// SIGKILL (`Child::kill` on Unix), then reap the process.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Waits for a successful exit; returns the last stdout/stderr line.
    fn finish(mut self) -> String {
        let status = self.child.wait().unwrap();
        self.seen.extend(self.lines.iter());
        assert!(status.success(), "{status}:\n{}", self.seen.join("\n"));
        self.seen
            .iter()
            .rev()
            .find(|l| l.starts_with('{'))
            .cloned()
            .unwrap_or_else(|| panic!("no JSON line:\n{}", self.seen.join("\n")))
    }
}

/// A history without its timings (which differ from run to run).
fn untimed(history: &Value) -> Vec<Value> {
    history
        .as_array()
        .expect("a history array")
        .iter()
        .map(|e| {
            let mut e = e.clone();
            let o = e.as_object_mut().unwrap();
            o.remove("seconds");
            o.remove("images_per_second");
            e
        })
        .collect()
}

/// A tensor as name, shape, file dtype and the bits of its elements.
type Bits = (String, Vec<usize>, FileDType, Vec<u32>);

/// A checkpoint's tensors, bit for bit, and its metadata with the history's timings
/// removed. Panics when the file does not read back whole.
fn content(path: &Path) -> (Vec<Bits>, BTreeMap<String, String>) {
    let ck = checkpoint::read(path)
        .unwrap_or_else(|e| panic!("{} does not read back whole: {e}", path.display()));
    let tensors = ck
        .tensors
        .into_iter()
        .map(|t| {
            let bits = match t.data {
                HostData::F32(v) => v.iter().map(|x| x.to_bits()).collect(),
                HostData::U32(v) => v,
            };
            (t.name, t.shape, t.file_dtype, bits)
        })
        .collect();
    let mut meta = ck.metadata;
    if let Some(h) = meta.get_mut("history") {
        *h = serde_json::to_string(&untimed(&serde_json::from_str(h).unwrap())).unwrap();
    }
    (tensors, meta)
}

fn epochs_done(meta: &BTreeMap<String, String>) -> usize {
    meta["epochs_done"].parse().unwrap()
}

#[test]
fn killed_while_saving_and_training_then_resumed_matches_an_uninterrupted_run() {
    // The run that is never interrupted.
    let reference = TempDir::new("reference");
    let ref_json: Value = serde_json::from_str(&start(&reference.0, false, None).finish()).unwrap();
    let (ref_last, ref_meta) = content(&reference.0.join("last.safetensors"));
    let (ref_best, _) = content(&reference.0.join("best.safetensors"));
    let ref_metrics: Value =
        serde_json::from_slice(&std::fs::read(reference.0.join("metrics.json")).unwrap()).unwrap();
    let ref_history = untimed(&ref_metrics["history"]);
    assert_eq!(ref_history.len(), EPOCHS);
    assert_eq!(epochs_done(&ref_meta), EPOCHS);

    let dir = TempDir::new("killed");
    let last = dir.0.join("last.safetensors");
    let best = dir.0.join("best.safetensors");
    // Every checkpoint seen after a kill is whole, and is the reference's state after
    // the epochs it says are done (its history a prefix of the reference's).
    let check_after_kill = |allowed: &[usize]| -> usize {
        let (_, meta) = content(&last);
        let done = epochs_done(&meta);
        assert!(
            allowed.contains(&done),
            "epochs_done {done}, expected one of {allowed:?}"
        );
        let history: Vec<Value> = serde_json::from_str(&meta["history"]).unwrap();
        assert_eq!(history, ref_history[..done], "history after {done} epochs");
        content(&best); // reads back whole
        done
    };

    // 1. Killed during the save of epoch 2's training state: the temp file is written and
    //    fsynced, the rename has not happened.
    let mut run = start(&dir.0, false, Some("last.safetensors:2"));
    run.wait_for("paused before renaming");
    run.kill();
    assert_eq!(
        check_after_kill(&[1]),
        1,
        "the previous checkpoint is in place"
    );
    let stale = dir.temp_files();
    assert_eq!(stale.len(), 1, "{stale:?}");
    assert!(stale[0].starts_with(".last.safetensors.tmp-"), "{stale:?}");
    // the killed writer's temp file holds the complete epoch-2 state
    let (_, temp_meta) = content(&dir.0.join(&stale[0]));
    assert_eq!(epochs_done(&temp_meta), 2);

    // 2. Resumed, then killed during training, shortly after epoch 2's line (while epoch 2
    //    saves or epoch 3 trains).
    let mut run = start(&dir.0, true, None);
    run.wait_for("resumed after epoch 1 of 4");
    run.wait_for("epoch  2:");
    std::thread::sleep(Duration::from_millis(150));
    run.kill();
    let done = check_after_kill(&[1, 2, 3]);

    // 3. Resumed to the end.
    let mut run = start(&dir.0, true, None);
    run.wait_for(&format!("resumed after epoch {done} of 4"));
    let json: Value = serde_json::from_str(&run.finish()).unwrap();
    assert_eq!(
        dir.temp_files(),
        Vec::<String>::new(),
        "the killed writers' temp files are removed by the next save"
    );
    let (got_last, got_meta) = content(&last);
    assert_eq!(got_meta, ref_meta, "metadata (without timings)");
    assert_eq!(got_last, ref_last, "model and optimizer state, bit for bit");
    assert_eq!(content(&best).0, ref_best, "the best model");
    let metrics: Value =
        serde_json::from_slice(&std::fs::read(dir.0.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(
        untimed(&metrics["history"]),
        ref_history,
        "metrics.json keeps every epoch"
    );
    for key in [
        "test_accuracy",
        "test_loss",
        "best_val_accuracy",
        "epochs",
        "train_loss",
    ] {
        assert_eq!(json[key], ref_json[key], "{key}");
        assert_eq!(metrics[key], ref_json[key], "{key} in metrics.json");
    }

    // 4. Resuming a finished run trains nothing and reports the same figures.
    let json: Value = serde_json::from_str(&start(&dir.0, true, None).finish()).unwrap();
    assert_eq!(json["test_accuracy"], ref_json["test_accuracy"]);
    assert_eq!(json["epochs"], EPOCHS);
    assert_eq!(content(&last).0, ref_last);
}
