//! The examples' command lines: each example accepts exactly the flags it reads (its
//! `--help` lists them, any other flag is refused), values that would measure nothing are
//! refused, the defaults, and the atomic metrics.json write.
//!
//! `every_example_binary_prints_its_own_help` runs the example binaries that cargo builds
//! with the tests (`cargo test -p cinder` or `cargo test --workspace`; after `cargo test
//! --test example_args` alone, build them with `cargo build --profile test --examples`).

#[path = "../examples/common/mod.rs"]
mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;

use clap::error::ErrorKind;
use common::cli::{self, Classifier, DEFAULT_EPOCHS, EXAMPLES, UNSUPERVISED_LIMIT};
use common::write_json;

const COMMON: [&str; 4] = ["--data", "--limit", "--seed", "--out"];
const TRAIN: [&str; 3] = ["--epochs", "--batch-size", "--lr"];
const OPTIM: [&str; 2] = ["--optimizer", "--schedule"];

/// The flags each example is meant to accept, besides `--help`.
fn expected(name: &str) -> Vec<&'static str> {
    let mut v: Vec<&str> = Vec::new();
    let own: &[&str] = match name {
        "mlp_mnist" | "lenet_mnist" | "lstm_mnist" | "vit_mnist" | "vgg_cifar"
        | "alexnet_cifar" | "resnet_cifar" => {
            v.extend(COMMON.iter().chain(&TRAIN).chain(&OPTIM));
            &[
                "--test-limit",
                "--val-fraction",
                "--patience",
                "--resume",
                "--distributed",
            ]
        }
        "char_lm" => {
            v.extend(COMMON.iter().chain(&TRAIN).chain(&OPTIM));
            &[
                "--arch",
                "--context",
                "--steps-per-epoch",
                "--val-chars",
                "--sample-len",
                "--resume",
            ]
        }
        "autoencoder" => {
            v.extend(COMMON.iter().chain(&TRAIN).chain(&OPTIM));
            &[
                "--test-limit",
                "--arch",
                "--latent",
                "--noise",
                "--mask",
                "--sparsity",
                "--tied",
            ]
        }
        "vae" => {
            v.extend(COMMON.iter().chain(&TRAIN).chain(&OPTIM));
            &["--test-limit", "--arch", "--latent"]
        }
        "flow" => {
            v.extend(COMMON.iter().chain(&TRAIN).chain(&OPTIM));
            &[
                "--test-limit",
                "--hidden",
                "--blocks",
                "--couplings",
                "--scales",
            ]
        }
        "gan" => {
            v.extend(COMMON.iter().chain(&TRAIN));
            &[
                "--arch",
                "--loss",
                "--conditional",
                "--latent",
                "--gamma",
                "--lambda-k",
                "--classifier",
            ]
        }
        "siamese" => {
            v.extend(COMMON.iter().chain(&TRAIN).chain(&OPTIM));
            &["--test-limit", "--latent"]
        }
        "dann" => {
            v.extend(COMMON.iter().chain(&TRAIN).chain(&OPTIM));
            &["--test-limit", "--target", "--noise", "--contrast"]
        }
        "style_transfer" => {
            v.extend(COMMON);
            &[
                "--weights",
                "--content",
                "--style",
                "--size",
                "--steps",
                "--lr",
                "--style-weight",
                "--pretrain-steps",
            ]
        }
        "unsupervised" => {
            v.extend(COMMON);
            &[
                "--k",
                "--components",
                "--n-init",
                "--gmm-iter",
                "--gmm-n-init",
                "--ica-k",
                "--ica-iter",
                "--ica-algorithm",
                "--nmf-k",
                "--nmf-iter",
                "--nmf-tol",
                "--nmf-loss",
                "--nmf-init",
                "--methods",
            ]
        }
        "topics" => {
            v.extend(COMMON);
            &["--k", "--iter", "--vocab", "--method"]
        }
        "manifold" => {
            v.extend(COMMON);
            &[
                "--method",
                "--neighbors",
                "--perplexity",
                "--tsne-iter",
                "--pca",
            ]
        }
        "device_info" => &["--n"],
        other => panic!("no expected flags for {other}"),
    };
    v.extend(own);
    v
}

/// The long flags that open the option lines of a `--help` text (indented by at most 6
/// spaces; descriptions are indented further).
fn flags_in_help(help: &str) -> BTreeSet<String> {
    help.lines()
        .filter(|l| l.len() - l.trim_start().len() <= 6)
        .filter_map(|l| {
            let l = l.trim_start().trim_start_matches("-h, ");
            let flag = l.split([' ', '=']).next()?;
            (flag.starts_with("--") && flag.len() > 2).then(|| flag.to_string())
        })
        .filter(|f| f != "--help")
        .collect()
}

fn set(v: &[&str]) -> BTreeSet<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn every_example_help_lists_exactly_its_flags() {
    for name in EXAMPLES {
        let help = cli::command(name).render_long_help().to_string();
        assert_eq!(
            flags_in_help(&help),
            set(&expected(name)),
            "{name}'s --help:\n{help}"
        );
        assert!(help.contains(&format!("Usage: {name} [OPTIONS]")), "{help}");
        if expected(name).contains(&"--out") {
            assert!(
                help.contains(&format!("[default: out/{name}]")),
                "{name}: --out's default:\n{help}"
            );
        }
    }
}

#[test]
fn flags_an_example_does_not_read_are_refused() {
    let all: BTreeSet<&str> = EXAMPLES.iter().flat_map(|n| expected(n)).collect();
    for name in EXAMPLES {
        let own = expected(name);
        for flag in all.iter().filter(|f| !own.contains(f)) {
            let e = cli::command(name)
                .try_get_matches_from([name, flag])
                .expect_err(&format!("{name} accepted {flag}"));
            assert_eq!(e.kind(), ErrorKind::UnknownArgument, "{name} {flag}: {e}");
        }
    }
    // what the audit removed: flags that were accepted and never read
    for (name, flag) in [
        ("gan", "--schedule"),
        ("gan", "--optimizer"),
        ("gan", "--test-limit"),
        ("gan", "--val-fraction"),
        ("vae", "--patience"),
        ("vae", "--noise"),
        ("siamese", "--arch"),
        ("autoencoder", "--resume"),
        ("unsupervised", "--epochs"),
    ] {
        let e = cli::command(name)
            .try_get_matches_from([name, flag, "1"])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&format!("unexpected argument '{flag}' found")),
            "{name} {flag}: {e}"
        );
    }
}

fn classifier(flags: &[&str]) -> Result<Classifier, String> {
    cli::try_parse::<Classifier>("lenet_mnist", flags).map_err(|e| e.to_string())
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
        (
            &["--optimizer", "adagrad"],
            "possible values: adam, adamw, sgd",
        ),
        (&["--schedule", "step"], "possible values: cosine, constant"),
    ] {
        let e = classifier(flags).expect_err(&format!("{flags:?} accepted"));
        assert!(e.contains(want), "{flags:?}: {e}");
    }
    for (name, flags, want) in [
        (
            "autoencoder",
            &["--latent", "0"][..],
            "for '--latent <LATENT>': must be at least 1",
        ),
        ("autoencoder", &["--noise=-0.1"], "at least 0"),
        ("autoencoder", &["--mask", "1"], "below 1"),
        (
            "autoencoder",
            &["--noise", "0.3", "--mask", "0.3"],
            "cannot be used with",
        ),
        (
            "autoencoder",
            &["--arch", "dcgan"],
            "possible values: mlp, conv",
        ),
        (
            "gan",
            &["--arch", "conv"],
            "possible values: mlp, dcgan, infogan",
        ),
        ("gan", &["--loss", "l2"], "[possible values: minimax,"),
        ("siamese", &["--latent", "0"], "must be at least 1"),
        ("unsupervised", &["--k", "0"], "must be at least 1"),
        ("unsupervised", &["--limit", "0"], "must be at least 1"),
        ("unsupervised", &["--nmf-k", "0"], "must be at least 1"),
        ("unsupervised", &["--ica-k", "0"], "must be at least 1"),
        (
            "unsupervised",
            &["--nmf-loss", "beta"],
            "[possible values: frobenius, kl]",
        ),
        (
            "unsupervised",
            &["--methods", "pca,tsne"],
            "[possible values: pca,",
        ),
        ("device_info", &["--n", "0"], "must be at least 1"),
    ] {
        let e = cli::command(name)
            .try_get_matches_from(std::iter::once(name).chain(flags.iter().copied()))
            .expect_err(&format!("{name} {flags:?} accepted"))
            .to_string();
        assert!(e.contains(want), "{name} {flags:?}: {e}");
    }
}

#[test]
fn accepted_values_and_defaults() {
    let a = classifier(&[]).unwrap();
    assert_eq!((a.train.epochs, a.train.epochs()), (None, DEFAULT_EPOCHS));
    assert_eq!(
        (a.train.batch_size, a.patience, a.val_fraction),
        (64, 3, 0.1)
    );
    assert_eq!(a.common.out, PathBuf::from("out/lenet_mnist"));
    assert_eq!((a.train.lr, a.common.seed, a.resume), (2e-3, 0, false));
    assert_eq!(
        (a.optim.optimizer.as_str(), a.optim.schedule.as_str()),
        ("adam", "cosine")
    );
    let a = classifier(&[
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
        "--out",
        "elsewhere",
        "--resume",
    ])
    .unwrap();
    assert_eq!(a.train.epochs(), 1);
    assert_eq!(
        (a.common.limit, a.test.test_limit, a.patience),
        (Some(1), Some(1), 0)
    );
    assert_eq!((a.val_fraction, a.train.lr), (0.5, 0.0));
    assert_eq!((a.common.out, a.resume), (PathBuf::from("elsewhere"), true));

    // per-example defaults
    let lr = |name: &str| cli::try_parse::<Classifier>(name, &[]).unwrap().train.lr;
    assert_eq!((lr("mlp_mnist"), lr("vgg_cifar")), (1e-3, 1e-3));
    let g = cli::try_parse::<cli::Gan>("gan", &[]).unwrap();
    assert_eq!((g.train.lr, g.latent, g.arch.as_str()), (5e-4, 64, "mlp"));
    assert_eq!(g.common.out, PathBuf::from("out/gan"));
    let ae = cli::try_parse::<cli::Autoencoder>("autoencoder", &[]).unwrap();
    assert_eq!(
        (ae.latent, ae.noise, ae.mask, ae.tied),
        (20, 0.0, 0.0, false)
    );
    let v = cli::try_parse::<cli::Vae>("vae", &["--arch", "conv"]).unwrap();
    assert_eq!((v.latent, v.arch.as_str()), (20, "conv"));
    let f = cli::try_parse::<cli::Flow>("flow", &[]).unwrap();
    assert_eq!((f.hidden, f.blocks, f.couplings, f.scales), (16, 1, 3, 2));
    assert_eq!(f.common.out, PathBuf::from("out/flow"));
    assert!(cli::try_parse::<cli::Flow>("flow", &["--scales", "4"]).is_err());
    let s = cli::try_parse::<cli::Siamese>("siamese", &[]).unwrap();
    assert_eq!(s.latent, 2);
    let u = cli::try_parse::<cli::Unsupervised>("unsupervised", &[]).unwrap();
    assert_eq!((u.limit(), u.k, u.components), (UNSUPERVISED_LIMIT, 10, 50));
    assert_eq!(u.common.out, PathBuf::from("out/unsupervised"));
    assert_eq!((u.ica_k, u.nmf_k, u.nmf_iter), (16, 16, 200));
    assert!(u.runs("nmf") && u.runs("ica") && u.runs("kmeans"));
    let u = cli::try_parse::<cli::Unsupervised>("unsupervised", &["--methods", "nmf,ica"]).unwrap();
    assert!(u.runs("nmf") && !u.runs("pca"));
    let a = cli::try_parse::<cli::Dann>("dann", &[]).unwrap();
    assert_eq!(
        (a.train.lr, a.optim.optimizer.as_str(), a.target.as_str()),
        (1e-2, "sgd", "texture")
    );
    assert!(cli::try_parse::<cli::Dann>("dann", &["--contrast", "1.5"]).is_err());
    let t = cli::try_parse::<cli::StyleTransfer>("style_transfer", &[]).unwrap();
    assert_eq!(
        (t.size, t.steps, t.pretrain_steps, t.style_weight),
        (64, 300, 400, None)
    );
    assert!(cli::try_parse::<cli::StyleTransfer>("style_transfer", &["--size", "8"]).is_err());
    let d = cli::try_parse::<cli::DeviceInfo>("device_info", &[]).unwrap();
    assert_eq!(d.n, 512);
    let help = cli::command("vgg_cifar").render_long_help().to_string();
    assert!(help.contains("data/cifar-10-batches-bin"), "{help}");
}

#[test]
#[should_panic(expected = "parses its command line into another struct")]
fn an_example_parsing_into_another_struct_is_caught() {
    let _ = cli::try_parse::<cli::Vae>("gan", &[]);
}

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
         --workspace` (they build the examples), or build them with `cargo build --profile \
         test --examples`",
        bin.display()
    );
    bin
}

#[test]
fn every_example_binary_prints_its_own_help() {
    for name in EXAMPLES {
        let out = std::process::Command::new(example(name))
            .arg("--help")
            .output()
            .unwrap();
        assert!(out.status.success(), "{name} --help: {out:?}");
        let help = String::from_utf8(out.stdout).unwrap();
        assert_eq!(
            flags_in_help(&help),
            set(&expected(name)),
            "{name}:\n{help}"
        );
        // a flag it does not read: clap's usage error, status 2, before anything runs
        let unused = if name == "gan" {
            "--schedule"
        } else {
            "--conditional"
        };
        let out = std::process::Command::new(example(name))
            .arg(unused)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name} {unused}: {err}");
        assert!(
            err.contains(&format!("unexpected argument '{unused}' found")),
            "{name} {unused}: {err}"
        );
    }
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
