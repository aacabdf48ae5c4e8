//! [`Dataset`]: images as `u8` in `[N, C, H, W]` order with their labels, kept on the host.

use cinder_device::{Error, Result};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

/// Images (bytes, `[N, C, H, W]` row-major) with one label each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dataset {
    images: Vec<u8>,
    labels: Vec<u8>,
    shape: [usize; 3],
    classes: usize,
}

impl Dataset {
    /// Wraps images of `shape` `[C, H, W]` and labels. Returns `Err` when the byte count is
    /// not `labels.len() * C * H * W` or a label is not below `classes`.
    pub fn new(
        images: Vec<u8>,
        labels: Vec<u8>,
        shape: [usize; 3],
        classes: usize,
    ) -> Result<Dataset> {
        let per: usize = shape.iter().product();
        if per == 0 || images.len() != labels.len() * per {
            return Err(Error::invalid(
                "Dataset",
                format!(
                    "{} image bytes for {} labels of shape {shape:?}",
                    images.len(),
                    labels.len()
                ),
                &shape,
            ));
        }
        if let Some(l) = labels.iter().find(|&&l| l as usize >= classes) {
            return Err(Error::invalid(
                "Dataset",
                format!("label {l} not below {classes} classes"),
                &shape,
            ));
        }
        Ok(Dataset {
            images,
            labels,
            shape,
            classes,
        })
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    /// True when there are no examples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    /// `[C, H, W]` of one image.
    pub fn image_shape(&self) -> [usize; 3] {
        self.shape
    }
    /// Bytes per image.
    pub fn image_len(&self) -> usize {
        self.shape.iter().product()
    }
    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.classes
    }
    /// The bytes of image `i` (panics past the end, like slice indexing).
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.image_len();
        &self.images[i * n..(i + 1) * n]
    }
    /// Every label.
    pub fn labels(&self) -> &[u8] {
        &self.labels
    }
    /// Every image's bytes.
    pub fn images(&self) -> &[u8] {
        &self.images
    }

    /// The examples at `indices`, in that order. Returns `Err` for an index past the end.
    pub fn subset(&self, indices: &[usize]) -> Result<Dataset> {
        if let Some(&i) = indices.iter().find(|&&i| i >= self.len()) {
            return Err(Error::invalid(
                "Dataset::subset",
                format!("index {i} past {} examples", self.len()),
                &self.shape,
            ));
        }
        let mut images = Vec::with_capacity(indices.len() * self.image_len());
        for &i in indices {
            images.extend_from_slice(self.image(i));
        }
        let labels = indices.iter().map(|&i| self.labels[i]).collect();
        Dataset::new(images, labels, self.shape, self.classes)
    }

    /// The first `n` examples (all of them when `n` is larger), as `--limit N`.
    pub fn take(&self, n: usize) -> Dataset {
        let n = n.min(self.len());
        Dataset {
            images: self.images[..n * self.image_len()].to_vec(),
            labels: self.labels[..n].to_vec(),
            shape: self.shape,
            classes: self.classes,
        }
    }

    /// A seeded random split into (train, validation) with `round(fraction * len)`
    /// validation examples. Returns `Err` when `fraction` is outside `[0, 1]`.
    pub fn split(&self, fraction: f32, seed: u64) -> Result<(Dataset, Dataset)> {
        if !(0.0..=1.0).contains(&fraction) {
            return Err(Error::invalid(
                "Dataset::split",
                format!("fraction {fraction} outside [0, 1]"),
                &self.shape,
            ));
        }
        let mut idx: Vec<usize> = (0..self.len()).collect();
        idx.shuffle(&mut StdRng::seed_from_u64(seed));
        let nv = (fraction * self.len() as f32).round() as usize;
        let (val, train) = idx.split_at(nv);
        Ok((self.subset(train)?, self.subset(val)?))
    }

    /// How many examples each class has.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut c = vec![0; self.classes];
        for &l in &self.labels {
            c[l as usize] += 1;
        }
        c
    }
}
