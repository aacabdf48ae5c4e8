//! Bags of words for topic models: Debian's `fortunes` split into documents (one fortune
//! each), a tokenizer and a vocabulary cut shaped like scikit-learn's `CountVectorizer`,
//! a deterministic held-out split, and the dense `[n_docs, vocab]` f32 count matrix.
//!
//! The tokenizer follows `CountVectorizer`'s defaults: the text is lowercased, then every
//! maximal run of word characters (letters, digits, `_`) of length at least 2 is a token,
//! which is what the pattern `(?u)\b\w\w+\b` matches. For ASCII text the two are the same;
//! outside ASCII, a word character here is Rust's `char::is_alphanumeric` (Unicode
//! Alphabetic or Numeric), which may differ from Python's `str.isalnum` for a few marks.
//! Python's `str.lower` and Rust's `to_lowercase` agree on ASCII.
//!
//! The English stop-word list, optional, is scikit-learn's `ENGLISH_STOP_WORDS` (318 words,
//! from the Glasgow Information Retrieval Group, BSD-3-Clause via scikit-learn 1.9.1),
//! committed as `crates/cinder-data/data/english_stop_words.txt`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use cinder_autograd::Tensor;
use cinder_device::{Device, Error, Result};

use crate::text::{clean, read_fortunes_raw};

/// scikit-learn's English stop words, one per line, sorted.
pub const ENGLISH_STOP_WORDS: &str = include_str!("../data/english_stop_words.txt");

/// The most f32 elements one storage binding holds on lavapipe (128 MiB): a count matrix
/// with more elements is refused.
pub const MAX_MATRIX_ELEMS: usize = 1 << 25;

/// [`ENGLISH_STOP_WORDS`] as a list.
pub fn english_stop_words() -> Vec<&'static str> {
    ENGLISH_STOP_WORDS
        .lines()
        .filter(|l| !l.is_empty())
        .collect()
}

/// The tokens of `text`: lowercased, then every maximal run of word characters
/// (alphanumeric or `_`) of at least 2 characters (scikit-learn's default
/// `token_pattern`, see the module documentation).
pub fn tokenize(text: &str) -> Vec<String> {
    let lower = text.to_lowercase();
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut len = 0usize;
    for c in lower.chars() {
        if c.is_alphanumeric() || c == '_' {
            cur.push(c);
            len += 1;
        } else {
            if len >= 2 {
                out.push(std::mem::take(&mut cur));
            }
            cur.clear();
            len = 0;
        }
    }
    if len >= 2 {
        out.push(cur);
    }
    out
}

/// The documents of one fortune file's raw bytes: the text between lines that are exactly
/// `%`, each cleaned by [`clean`] and trimmed; empty documents are dropped.
pub fn split_documents(raw: &[u8]) -> Vec<String> {
    let mut docs = Vec::new();
    let mut start = 0;
    let mut push = |piece: &[u8]| {
        let t = clean(piece);
        let t = t.trim();
        if !t.is_empty() {
            docs.push(t.to_string());
        }
    };
    let mut pos = 0;
    for line in raw.split(|&b| b == b'\n') {
        let end = pos + line.len();
        let l = line.strip_suffix(b"\r").unwrap_or(line);
        if l == b"%" {
            push(&raw[start..pos]);
            start = (end + 1).min(raw.len());
        }
        pos = end + 1;
    }
    if start < raw.len() {
        push(&raw[start..]);
    }
    docs
}

/// One fortune.
#[derive(Clone, Debug)]
pub struct Document {
    /// The fortune file it came from (no directory).
    pub file: String,
    /// Its text, cleaned.
    pub text: String,
}

/// Every fortune of the files of `dir` ([`crate::text::read_fortunes`]'s selection), in
/// file-name order and then in file order. Returns [`Error::Io`] naming the path when the
/// directory or a file cannot be read, `Err` when it holds no fortune file or no document.
pub fn read_fortune_documents(dir: &Path) -> Result<Vec<Document>> {
    let mut docs = Vec::new();
    for (file, raw) in read_fortunes_raw(dir)? {
        for text in split_documents(&raw) {
            docs.push(Document {
                file: file.clone(),
                text,
            });
        }
    }
    if docs.is_empty() {
        return Err(Error::invalid(
            "read_fortune_documents",
            format!("{} holds no fortune", dir.display()),
            &[],
        ));
    }
    Ok(docs)
}

/// `(kept, held_out)`: item `i` is held out when `i % every == every - 1`. Returns `Err`
/// when `every < 2` or either side would be empty.
pub fn split_every<T>(items: Vec<T>, every: usize) -> Result<(Vec<T>, Vec<T>)> {
    if every < 2 {
        return Err(Error::invalid(
            "split_every",
            "every must be at least 2",
            &[every],
        ));
    }
    let n = items.len();
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for (i, x) in items.into_iter().enumerate() {
        if i % every == every - 1 {
            b.push(x);
        } else {
            a.push(x);
        }
    }
    if a.is_empty() || b.is_empty() {
        return Err(Error::invalid(
            "split_every",
            format!("{n} items give an empty side"),
            &[n, every],
        ));
    }
    Ok((a, b))
}

/// A document-frequency bound, as scikit-learn's `min_df` / `max_df`: an absolute count
/// (sklearn's int) or a fraction of the documents (sklearn's float in `[0, 1]`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum DocFreq {
    /// At least / at most this many documents.
    Count(usize),
    /// At least / at most this fraction of the documents.
    Fraction(f64),
}

impl DocFreq {
    fn docs(self, n: usize) -> f64 {
        match self {
            DocFreq::Count(c) => c as f64,
            DocFreq::Fraction(f) => f * n as f64,
        }
    }
    fn valid(self) -> bool {
        match self {
            DocFreq::Count(_) => true,
            DocFreq::Fraction(f) => (0.0..=1.0).contains(&f),
        }
    }
}

/// Word counts with a vocabulary cut, shaped like scikit-learn's `CountVectorizer`
/// (default tokenizer, lowercase, optional English stop words, `min_df`, `max_df`,
/// `max_features`). The vocabulary is sorted alphabetically (by code point) as sklearn's.
#[derive(Clone, Debug)]
pub struct CountVectorizer {
    /// Keep terms in at least this many documents (default `Count(1)`).
    pub min_df: DocFreq,
    /// Keep terms in at most this many documents (default `Fraction(1.0)`).
    pub max_df: DocFreq,
    /// Keep at most this many terms, the most frequent over the corpus (default none).
    /// Ties at the cut go to the alphabetically first term (numpy's default `argsort`,
    /// which sklearn uses, is not stable, so sklearn's choice among tied terms may differ).
    pub max_features: Option<usize>,
    /// Drop [`english_stop_words`] (sklearn's `stop_words="english"`; default false).
    pub stop_words: bool,
    vocab: Vec<String>,
    index: HashMap<String, usize>,
}

impl Default for CountVectorizer {
    fn default() -> Self {
        Self::new()
    }
}

impl CountVectorizer {
    /// sklearn's defaults: `min_df = 1`, `max_df = 1.0`, no `max_features`, no stop words.
    pub fn new() -> Self {
        CountVectorizer {
            min_df: DocFreq::Count(1),
            max_df: DocFreq::Fraction(1.0),
            max_features: None,
            stop_words: false,
            vocab: Vec::new(),
            index: HashMap::new(),
        }
    }
    /// Sets `min_df`.
    pub fn with_min_df(mut self, v: DocFreq) -> Self {
        self.min_df = v;
        self
    }
    /// Sets `max_df`.
    pub fn with_max_df(mut self, v: DocFreq) -> Self {
        self.max_df = v;
        self
    }
    /// Sets `max_features`.
    pub fn with_max_features(mut self, v: Option<usize>) -> Self {
        self.max_features = v;
        self
    }
    /// Sets whether English stop words are dropped.
    pub fn with_stop_words(mut self, v: bool) -> Self {
        self.stop_words = v;
        self
    }

    fn terms(&self, doc: &str, stop: &HashSet<&str>) -> Vec<String> {
        tokenize(doc)
            .into_iter()
            .filter(|t| !stop.contains(t.as_str()))
            .collect()
    }

    fn stop_set(&self) -> HashSet<&'static str> {
        if self.stop_words {
            english_stop_words().into_iter().collect()
        } else {
            HashSet::new()
        }
    }

    /// Learns the vocabulary of `docs`. Returns `Err` when there is no document, when a
    /// fraction is outside `[0, 1]`, when `max_df` allows fewer documents than `min_df`,
    /// when `max_features` is `Some(0)`, or when no term remains after the cut
    /// (sklearn's "After pruning, no terms remain").
    pub fn fit<S: AsRef<str>>(&mut self, docs: &[S]) -> Result<&mut Self> {
        let op = "CountVectorizer::fit";
        let n = docs.len();
        if n == 0 {
            return Err(Error::invalid(op, "no documents", &[0]));
        }
        if !self.min_df.valid() || !self.max_df.valid() || self.max_features == Some(0) {
            return Err(Error::invalid(
                op,
                format!(
                    "min_df {:?} / max_df {:?} fractions must lie in [0, 1] and max_features \
                     be positive",
                    self.min_df, self.max_df
                ),
                &[n],
            ));
        }
        let (low, high) = (self.min_df.docs(n), self.max_df.docs(n));
        if high < low {
            return Err(Error::invalid(
                op,
                "max_df corresponds to fewer documents than min_df",
                &[n],
            ));
        }
        let stop = self.stop_set();
        // term -> (document frequency, total count), sorted alphabetically
        let mut stats: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        for d in docs {
            let mut seen = HashSet::new();
            for t in self.terms(d.as_ref(), &stop) {
                let e = stats.entry(t.clone()).or_default();
                e.1 += 1;
                if seen.insert(t) {
                    e.0 += 1;
                }
            }
        }
        let mut kept: Vec<(String, usize)> = stats
            .into_iter()
            .filter(|(_, (df, _))| (*df as f64) <= high && (*df as f64) >= low)
            .map(|(t, (_, tf))| (t, tf))
            .collect();
        if let Some(limit) = self.max_features
            && kept.len() > limit
        {
            let mut order: Vec<usize> = (0..kept.len()).collect();
            order.sort_by(|&a, &b| kept[b].1.cmp(&kept[a].1)); // stable: ties by name
            let mut keep = vec![false; kept.len()];
            for &i in &order[..limit] {
                keep[i] = true;
            }
            let mut i = 0;
            kept.retain(|_| {
                i += 1;
                keep[i - 1]
            });
        }
        if kept.is_empty() {
            return Err(Error::invalid(
                op,
                "after pruning, no terms remain (lower min_df or raise max_df)",
                &[n],
            ));
        }
        self.vocab = kept.into_iter().map(|(t, _)| t).collect();
        self.index = self
            .vocab
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i))
            .collect();
        Ok(self)
    }

    /// The learned vocabulary, alphabetical (empty before [`CountVectorizer::fit`]).
    pub fn vocabulary(&self) -> &[String] {
        &self.vocab
    }

    /// Row-major `[docs.len(), vocab]` counts of the vocabulary's terms (others dropped).
    /// Returns `Err` before `fit`.
    pub fn counts<S: AsRef<str>>(&self, docs: &[S]) -> Result<Vec<f32>> {
        if self.vocab.is_empty() {
            return Err(Error::invalid(
                "CountVectorizer::counts",
                "the vectorizer is not fitted",
                &[],
            ));
        }
        let v = self.vocab.len();
        let stop = self.stop_set();
        let mut out = vec![0f32; docs.len() * v];
        for (i, d) in docs.iter().enumerate() {
            for t in self.terms(d.as_ref(), &stop) {
                if let Some(&j) = self.index.get(&t) {
                    out[i * v + j] += 1.0;
                }
            }
        }
        Ok(out)
    }

    /// The `[docs.len(), vocab]` f32 count matrix on `device`. Returns `Err` before `fit`,
    /// for no document, and when the matrix would exceed [`MAX_MATRIX_ELEMS`] (one 128 MiB
    /// storage binding on lavapipe: lower `max_features` or the number of documents).
    pub fn transform<S: AsRef<str>>(&self, device: &Device, docs: &[S]) -> Result<Tensor> {
        let (n, v) = (docs.len(), self.vocab.len());
        if n == 0 || n.saturating_mul(v) > MAX_MATRIX_ELEMS {
            return Err(Error::invalid(
                "CountVectorizer::transform",
                format!(
                    "a [{n}, {v}] count matrix: need at least one document and at most \
                     {MAX_MATRIX_ELEMS} elements (one 128 MiB binding)"
                ),
                &[n, v],
            ));
        }
        let c = self.counts(docs)?;
        Tensor::from_slice(device, &c, &[n, v])
    }

    /// [`CountVectorizer::fit`] then [`CountVectorizer::transform`]; errors as both.
    pub fn fit_transform<S: AsRef<str>>(&mut self, device: &Device, docs: &[S]) -> Result<Tensor> {
        self.fit(docs)?;
        self.transform(device, docs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizer_matches_sklearns_default_pattern() {
        assert_eq!(
            tokenize("A cat's dog_2 ran-away, I x9 ÉTÉ 42!"),
            vec!["cat", "dog_2", "ran", "away", "x9", "été", "42"]
        );
        assert!(tokenize("a b c").is_empty());
        assert_eq!(tokenize("ab"), vec!["ab"]);
    }

    #[test]
    fn documents_split_on_percent_lines_only() {
        let raw = b"one\n100% sure\n%\n\n%\ntwo\nlines\n%\nthree\x08\x08ee";
        assert_eq!(
            split_documents(raw),
            vec!["one\n100% sure", "two\nlines", "three"]
        );
        assert!(split_documents(b"%\n%\n").is_empty());
    }

    #[test]
    fn vocabulary_cut_as_sklearn() {
        let docs = [
            "the cat sat on the mat",
            "the dog sat",
            "the cat and the dog",
            "a bird",
        ];
        let mut v = CountVectorizer::new();
        v.fit(&docs).unwrap();
        assert_eq!(
            v.vocabulary(),
            ["and", "bird", "cat", "dog", "mat", "on", "sat", "the"]
        );
        // min_df 2 and max_df 0.5 (2 of 4 documents): cat, dog, sat stay, the (3) goes
        let mut v = CountVectorizer::new()
            .with_min_df(DocFreq::Count(2))
            .with_max_df(DocFreq::Fraction(0.5));
        v.fit(&docs).unwrap();
        assert_eq!(v.vocabulary(), ["cat", "dog", "sat"]);
        // max_features 2: the (4), then cat/dog/sat tie at 2: the alphabetically first
        let mut v = CountVectorizer::new().with_max_features(Some(2));
        v.fit(&docs).unwrap();
        assert_eq!(v.vocabulary(), ["cat", "the"]);
        let c = v.counts(&["The THE cat dog", ""]).unwrap();
        assert_eq!(c, vec![1.0, 2.0, 0.0, 0.0]);
        // stop words
        let mut v = CountVectorizer::new().with_stop_words(true);
        v.fit(&docs).unwrap();
        assert_eq!(v.vocabulary(), ["bird", "cat", "dog", "mat", "sat"]);
    }

    #[test]
    fn bad_input_errs() {
        let docs = ["aa bb", "aa"];
        assert!(CountVectorizer::new().fit::<&str>(&[]).is_err());
        assert!(
            CountVectorizer::new()
                .with_min_df(DocFreq::Count(3))
                .fit(&docs)
                .is_err()
        );
        assert!(
            CountVectorizer::new()
                .with_max_df(DocFreq::Fraction(1.5))
                .fit(&docs)
                .is_err()
        );
        assert!(
            CountVectorizer::new()
                .with_max_df(DocFreq::Count(1))
                .with_min_df(DocFreq::Count(2))
                .fit(&docs)
                .is_err()
        );
        assert!(CountVectorizer::new().fit(&["a b", "!"]).is_err());
        assert!(CountVectorizer::new().counts(&docs).is_err());
        assert!(split_every(vec![1, 2, 3], 1).is_err());
        assert!(split_every(vec![1], 2).is_err());
        assert_eq!(
            split_every((0..7).collect(), 3).unwrap(),
            (vec![0, 1, 3, 4, 6], vec![2, 5])
        );
        let e = read_fortune_documents(Path::new("/nonexistent/fortunes")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/fortunes"), "{e}");
    }
}
