//! CIFAR-10's binary format: files of 3073-byte records, one label byte then 3,072 pixel
//! bytes (the red, green and blue 32x32 planes).

use std::path::Path;

use cinder_device::{Error, Result};

use crate::dataset::Dataset;
use crate::mnist::Split;

/// Bytes per record: the label and a 3x32x32 image.
pub const RECORD: usize = 1 + 3 * 32 * 32;

/// CIFAR-10's class names, by label.
pub const CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// Parses the records of one file read from `path` (named in errors). Returns
/// [`Error::Format`] when the length is not a positive multiple of 3073 or a label is above 9
/// (naming the record's offset).
pub fn parse(path: &Path, bytes: &[u8]) -> Result<Dataset> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(RECORD) {
        return Err(Error::Format {
            path: path.to_path_buf(),
            at: format!("offset {}", bytes.len() - bytes.len() % RECORD),
            msg: format!(
                "{} bytes is not a whole number of {RECORD}-byte records",
                bytes.len()
            ),
        });
    }
    let n = bytes.len() / RECORD;
    let mut images = Vec::with_capacity(n * (RECORD - 1));
    let mut labels = Vec::with_capacity(n);
    for (i, rec) in bytes.chunks_exact(RECORD).enumerate() {
        if rec[0] > 9 {
            return Err(Error::Format {
                path: path.to_path_buf(),
                at: format!("offset {}", i * RECORD),
                msg: format!("record {i} has label {}, not a class 0-9", rec[0]),
            });
        }
        labels.push(rec[0]);
        images.extend_from_slice(&rec[1..]);
    }
    Dataset::new(images, labels, [3, 32, 32], 10)
}

/// Loads `data_batch_1.bin` .. `data_batch_5.bin` (train) or `test_batch.bin` (test) from
/// `dir`. Returns [`Error::Io`] naming a missing file and errors as [`parse`].
pub fn load(dir: &Path, split: Split) -> Result<Dataset> {
    let files: Vec<String> = match split {
        Split::Train => (1..=5).map(|i| format!("data_batch_{i}.bin")).collect(),
        Split::Test => vec!["test_batch.bin".into()],
    };
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for f in files {
        let path = dir.join(&f);
        let bytes = std::fs::read(&path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        let d = parse(&path, &bytes)?;
        images.extend_from_slice(d.images());
        labels.extend_from_slice(d.labels());
    }
    Dataset::new(images, labels, [3, 32, 32], 10)
}

/// Encodes images (`[N, 3, 32, 32]` bytes) and labels as CIFAR-10 records (for tests and
/// tools). Returns `Err` when the lengths disagree.
pub fn encode(images: &[u8], labels: &[u8]) -> Result<Vec<u8>> {
    if images.len() != labels.len() * (RECORD - 1) {
        return Err(Error::invalid(
            "cifar::encode",
            "image bytes and labels disagree",
            &[labels.len()],
        ));
    }
    let mut out = Vec::with_capacity(labels.len() * RECORD);
    for (i, &l) in labels.iter().enumerate() {
        out.push(l);
        out.extend_from_slice(&images[i * (RECORD - 1)..(i + 1) * (RECORD - 1)]);
    }
    Ok(out)
}
