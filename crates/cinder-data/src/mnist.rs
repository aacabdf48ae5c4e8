//! MNIST and Fashion-MNIST: the four standard IDX files of a directory, and where to find
//! them (`--data DIR`, then `CINDER_DATA`, then Debian's `dataset-fashion-mnist`).

use std::path::{Path, PathBuf};

use cinder_device::{Error, Result};

use crate::dataset::Dataset;
use crate::idx;

/// Where Debian's `dataset-fashion-mnist` package installs the data set.
pub const DEBIAN_FASHION_MNIST: &str = "/usr/share/datasets/fashion-mnist";

/// Fashion-MNIST's class names, by label.
pub const FASHION_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// Which half of the data set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// The 60,000 training images.
    Train,
    /// The 10,000 test images.
    Test,
}

/// The data directory: `explicit` (a `--data` flag) if given, else `$CINDER_DATA`, else
/// [`DEBIAN_FASHION_MNIST`].
pub fn data_dir(explicit: Option<&Path>) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    match std::env::var_os("CINDER_DATA") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(DEBIAN_FASHION_MNIST),
    }
}

/// The file `stem` in `dir`, raw or `.gz` (both spellings `x-idx3-ubyte` and
/// `x.idx3-ubyte`). Returns [`Error::Io`] naming the first path tried when none exists,
/// with a hint to install the data set.
fn find(dir: &Path, stem: &str) -> Result<PathBuf> {
    let dotted = stem.replacen("-idx", ".idx", 1);
    for name in [
        stem.to_string(),
        format!("{stem}.gz"),
        dotted.clone(),
        format!("{dotted}.gz"),
    ] {
        let p = dir.join(name);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(Error::Io {
        path: dir.join(stem),
        source: std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!(
                "no {stem}[.gz] in {}: pass --data DIR, set CINDER_DATA, or install Fashion-MNIST \
                 with `apt-get install dataset-fashion-mnist` (scripts/setup.sh)",
                dir.display()
            ),
        ),
    })
}

/// Loads one split from the standard files of `dir` (`train-images-idx3-ubyte`,
/// `train-labels-idx1-ubyte`, `t10k-...`, raw or gzip). Returns `Err` naming the file when
/// one is missing, corrupt, not `[N, H, W]` images and `[N]` labels with equal `N`, or holds
/// a label above 9.
pub fn load(dir: &Path, split: Split) -> Result<Dataset> {
    let prefix = match split {
        Split::Train => "train",
        Split::Test => "t10k",
    };
    let ip = find(dir, &format!("{prefix}-images-idx3-ubyte"))?;
    let lp = find(dir, &format!("{prefix}-labels-idx1-ubyte"))?;
    let images = idx::read(&ip)?;
    let labels = idx::read(&lp)?;
    if images.dims.len() != 3 {
        return Err(Error::Format {
            path: ip,
            at: "dimensions".into(),
            msg: format!("expected [N, H, W] images, found {:?}", images.dims),
        });
    }
    if labels.dims.len() != 1 || labels.dims[0] != images.dims[0] {
        return Err(Error::Format {
            path: lp,
            at: "dimensions".into(),
            msg: format!(
                "expected [{}] labels, found {:?}",
                images.dims[0], labels.dims
            ),
        });
    }
    if let Some(pos) = labels.data.iter().position(|&l| l > 9) {
        return Err(Error::Format {
            path: lp,
            at: format!("offset {}", 8 + pos),
            msg: format!("label {} is not a digit class 0-9", labels.data[pos]),
        });
    }
    let shape = [1, images.dims[1], images.dims[2]];
    Dataset::new(images.data, labels.data, shape, 10)
}
