//! Data-parallel runs under `mpirun -np 2` on loopback (feature `mpi`; `scripts/setup.sh
//! --mpi` installs Open MPI). This file is its own main: run by `cargo test`, it starts
//! itself under mpirun once per case, with `CINDER_MPI_CASE` naming the case the ranks run,
//! and checks what the job did.
//!
//! - `equivalence`: two ranks of batch B for N steps end with the parameters of one
//!   process with batch 2B (and with each other's);
//! - `failure`: rank 1 fails at its third step while rank 0 waits in an allreduce; the job
//!   must exit non-zero, naming the error, well within the timeout;
//! - `mismatch`: the ranks build different models; DistributedDataParallel::new refuses on
//!   both and the job exits non-zero.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use cinder_device::{Device, Error};
use cinder_distributed::{Communicator, DistributedDataParallel, MpiCommunicator, exit_on_error};
use cinder_nn::VarStore;

/// Longest a job may take before the test calls it hung.
const TIMEOUT: Duration = Duration::from_secs(240);

fn main() {
    if let Ok(case) = std::env::var("CINDER_MPI_CASE") {
        rank_main(&case);
        return;
    }
    let cases: [(&str, Check); 3] = [
        ("equivalence", check_equivalence),
        ("failure", check_failure),
        ("mismatch", check_mismatch),
    ];
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let mut failed = 0;
    println!("\nrunning {} tests", cases.len());
    for (name, check) in cases {
        if !filter.is_empty() && !filter.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        let dir = std::env::temp_dir().join(format!("cinder-mpi-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let job = run_job(name, &dir);
        let ok = std::panic::catch_unwind(|| check(&dir, &job)).is_ok();
        if !ok {
            eprintln!(
                "--- {name}: the job's output\n{}\n{}",
                job.stdout, job.stderr
            );
            failed += 1;
        }
        println!("test {name} ... {}", if ok { "ok" } else { "FAILED" });
        let _ = std::fs::remove_dir_all(&dir);
    }
    println!(
        "\ntest result: {}. {failed} failed",
        if failed == 0 { "ok" } else { "FAILED" }
    );
    if failed > 0 {
        std::process::exit(1);
    }
}

/// What a case checks of the job's directory and outcome.
type Check = fn(&Path, &Job);

/// What an mpirun job did.
struct Job {
    status: Option<i32>,
    seconds: f64,
    stdout: String,
    stderr: String,
}

/// Starts this program under `mpirun -np 2` on loopback (as root too) with the case `case`,
/// and waits for it, killing it past [`TIMEOUT`] (`status` is then `None`).
fn run_job(case: &str, dir: &Path) -> Job {
    let exe = std::env::current_exe().unwrap();
    let (out, err) = (dir.join("stdout"), dir.join("stderr"));
    let start = Instant::now();
    let mut child = Command::new("mpirun")
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
        .arg(&exe)
        .env("CINDER_MPI_CASE", case)
        .env("CINDER_MPI_DIR", dir)
        .stdout(Stdio::from(std::fs::File::create(&out).unwrap()))
        .stderr(Stdio::from(std::fs::File::create(&err).unwrap()))
        .spawn()
        .expect("mpirun (scripts/setup.sh --mpi installs Open MPI)");
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s.code();
        }
        if start.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    Job {
        status,
        seconds: start.elapsed().as_secs_f64(),
        stdout: std::fs::read_to_string(out).unwrap_or_default(),
        stderr: std::fs::read_to_string(err).unwrap_or_default(),
    }
}

/// What each rank runs: the case `case`, its output in `$CINDER_MPI_DIR`.
fn rank_main(case: &str) {
    let comm: Rc<dyn Communicator> = Rc::new(MpiCommunicator::init().unwrap());
    let dir = PathBuf::from(std::env::var_os("CINDER_MPI_DIR").unwrap());
    let c = comm.clone();
    exit_on_error(c.as_ref(), || -> Result<(), Error> {
        let dev = Device::default()?;
        match case {
            "equivalence" => {
                let (params, allreduces) = common::data_parallel(&dev, comm.clone())?;
                let bytes: Vec<u8> = params.iter().flat_map(|v| v.to_le_bytes()).collect();
                std::fs::write(dir.join(format!("rank{}.f32", comm.rank())), bytes).unwrap();
                println!("rank {} allreduces {allreduces}", comm.rank());
            }
            "failure" => {
                let vs = VarStore::new(&dev, 0);
                let _model = cinder_models::LeNet5::new(&vs.root(), 1, 10)?;
                let mut ddp = DistributedDataParallel::new(comm.clone(), &vs)?;
                for step in 0..100 {
                    if comm.rank() == 1 && step == 2 {
                        return Err(Error::invalid("the test", "rank 1 fails at step 2", &[]));
                    }
                    ddp.sync_gradients()?;
                }
                println!("rank {} finished every step", comm.rank());
            }
            "mismatch" => {
                let vs = VarStore::new(&dev, 0);
                let _model = cinder_models::LeNet5::new(&vs.root(), 1, 10 + comm.rank())?;
                DistributedDataParallel::new(comm.clone(), &vs)?;
                println!("rank {} built its replica", comm.rank());
            }
            other => panic!("unknown case {other}"),
        }
        Ok(())
    });
}

fn read_f32(path: &Path) -> Vec<f32> {
    let b = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn check_equivalence(dir: &Path, job: &Job) {
    assert_eq!(job.status, Some(0), "the two-rank job failed");
    let dev = Device::default().unwrap();
    let want = common::single_process(&dev).unwrap();
    let (r0, r1) = (
        read_f32(&dir.join("rank0.f32")),
        read_f32(&dir.join("rank1.f32")),
    );
    assert_eq!(r0, r1, "the ranks' parameters differ");
    assert_eq!(r0.len(), want.len());
    let mut worst = 0f32;
    for (a, b) in r0.iter().zip(&want) {
        worst = worst.max((a - b).abs() / (1e-3 + b.abs()));
    }
    println!(
        "  2 ranks x batch {} vs 1 x {}: largest relative difference {worst:.2e}",
        common::BATCH,
        2 * common::BATCH
    );
    assert!(worst < 1e-3, "2 ranks differ from 1 by {worst}");
    // The parameters moved: a run that trained nothing would pass the comparison too.
    let init = {
        let vs = VarStore::new(&dev, 0);
        let _m = cinder_models::LeNet5::new(&vs.root(), 1, 10).unwrap();
        common::flat_parameters(&vs).unwrap()
    };
    let moved = init.iter().zip(&want).filter(|(a, b)| a != b).count();
    assert!(moved > want.len() / 2, "only {moved} parameters moved");
    // 64 KiB buckets, parameters in reverse: [fc3.*, fc2.*, fc1.bias], [fc1.weight] (188 KiB,
    // alone), [conv2.*, conv1.*]: three allreduces per step, not one per tensor (10).
    let total: usize = job
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("rank 0 allreduces "))
        .and_then(|n| n.trim().parse().ok())
        .expect("rank 0 reports its allreduces");
    assert_eq!(total, 3 * common::STEPS);
}

fn check_failure(_dir: &Path, job: &Job) {
    assert!(
        job.status.is_some(),
        "the job hung: killed after {TIMEOUT:?}"
    );
    assert_ne!(job.status, Some(0));
    assert!(
        job.stderr.contains("rank 1 of 2: error") && job.stderr.contains("rank 1 fails at step 2"),
        "no error message"
    );
    assert!(!job.stdout.contains("finished every step"));
    println!(
        "  the failing job exited with status {:?} after {:.1} s",
        job.status, job.seconds
    );
}

fn check_mismatch(_dir: &Path, job: &Job) {
    assert!(
        job.status.is_some(),
        "the job hung: killed after {TIMEOUT:?}"
    );
    assert_ne!(job.status, Some(0));
    assert!(
        job.stderr.contains("the ranks hold different models"),
        "no error message"
    );
    assert!(!job.stdout.contains("built its replica"));
}
