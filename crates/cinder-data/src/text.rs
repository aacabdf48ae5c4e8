//! Text corpora for character-level models: Debian's `fortunes` files (one fortune file per
//! topic, entries between `%` lines), a split into training and validation *by file*, a
//! character vocabulary, and the unigram entropy a model must beat.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use cinder_device::{Error, Result};

/// Where Debian's `fortunes` package puts its files.
pub const FORTUNES_DIR: &str = "/usr/share/games/fortunes";

/// `data`, else `$CINDER_TEXT`, else [`FORTUNES_DIR`].
pub fn fortunes_dir(data: Option<&Path>) -> PathBuf {
    data.map(Path::to_path_buf)
        .or_else(|| std::env::var_os("CINDER_TEXT").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(FORTUNES_DIR))
}

/// One fortune file, cleaned.
#[derive(Clone, Debug)]
pub struct TextFile {
    /// The file's name (no directory).
    pub name: String,
    /// Its text, cleaned as [`clean`] says.
    pub text: String,
}

/// A fortune file's text as a model should see it: invalid UTF-8 replaced, overstruck
/// characters (`c` backspace `x`, the old terminals' bold and underline) reduced to the
/// character printed last, the `%` separator lines turned into blank lines, and control
/// characters other than newline and tab dropped.
pub fn clean(raw: &[u8]) -> String {
    let s = String::from_utf8_lossy(raw);
    let mut out: Vec<char> = Vec::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\u{8}' => {
                out.pop();
            }
            '\n' | '\t' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    let text: String = out.into_iter().collect();
    text.lines()
        .map(|l| if l == "%" { "" } else { l })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The fortune files of `dir`, sorted by name: every regular file except the `.dat`
/// indexes and the `.u8` copies (symbolic links are skipped, so no file counts twice).
/// Returns [`Error::Io`] naming the path when the directory or a file cannot be read, and
/// `Err` when it holds no fortune file.
pub fn read_fortunes(dir: &Path) -> Result<Vec<TextFile>> {
    Ok(read_fortunes_raw(dir)?
        .into_iter()
        .map(|(name, raw)| TextFile {
            name,
            text: clean(&raw),
        })
        .collect())
}

/// The fortune files of `dir` as [`read_fortunes`] selects them, `(name, raw bytes)`,
/// sorted by name, not cleaned. Errors as [`read_fortunes`].
pub fn read_fortunes_raw(dir: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    let io = |path: &Path, source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut files = Vec::new();
    for e in std::fs::read_dir(dir).map_err(|e| io(dir, e))? {
        let e = e.map_err(|e| io(dir, e))?;
        let path = e.path();
        let meta = std::fs::symlink_metadata(&path).map_err(|e| io(&path, e))?;
        let ext = path.extension().and_then(|x| x.to_str()).unwrap_or("");
        if !meta.is_file() || ext == "dat" || ext == "u8" {
            continue;
        }
        let raw = std::fs::read(&path).map_err(|e| io(&path, e))?;
        files.push((e.file_name().to_string_lossy().into_owned(), raw));
    }
    if files.is_empty() {
        return Err(Error::invalid(
            "read_fortunes",
            format!(
                "{} holds no fortune file (install Debian's `fortunes` package: scripts/setup.sh)",
                dir.display()
            ),
            &[],
        ));
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(files)
}

/// Files `(training, validation)`: in name order, file `i` goes to validation when `i %
/// every == every - 1` (every `every`-th file), the rest to training, so no text of a
/// validation file is seen in training. Returns `Err` when `every` is below 2 or either
/// side would be empty.
pub fn split_by_file(files: Vec<TextFile>, every: usize) -> Result<(Vec<TextFile>, Vec<TextFile>)> {
    if every < 2 {
        return Err(Error::invalid(
            "split_by_file",
            "every must be at least 2",
            &[every],
        ));
    }
    let (mut train, mut val) = (Vec::new(), Vec::new());
    for (i, f) in files.into_iter().enumerate() {
        if i % every == every - 1 {
            val.push(f);
        } else {
            train.push(f);
        }
    }
    if train.is_empty() || val.is_empty() {
        return Err(Error::invalid(
            "split_by_file",
            format!(
                "{} training and {} validation files: both need one",
                train.len(),
                val.len()
            ),
            &[every],
        ));
    }
    Ok((train, val))
}

/// The files' texts joined with blank lines between them.
pub fn join(files: &[TextFile]) -> String {
    files
        .iter()
        .map(|f| f.text.as_str())
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// A character vocabulary: index 0 is the unknown character (shown as U+FFFD), then the
/// characters of the text it was built from, in code-point order.
#[derive(Clone, Debug)]
pub struct CharVocab {
    chars: Vec<char>,
    index: HashMap<char, u32>,
}

impl CharVocab {
    /// The characters of `text` that occur at least `min_count` times (the rest map to the
    /// unknown index).
    pub fn new(text: &str, min_count: usize) -> CharVocab {
        let mut counts: BTreeMap<char, usize> = BTreeMap::new();
        for c in text.chars() {
            *counts.entry(c).or_default() += 1;
        }
        let mut chars = vec!['\u{FFFD}'];
        chars.extend(
            counts
                .into_iter()
                .filter(|&(c, n)| n >= min_count.max(1) && c != '\u{FFFD}')
                .map(|(c, _)| c),
        );
        CharVocab::from_chars(chars)
    }

    /// The vocabulary whose index `i` is `chars[i]` (`chars[0]` the unknown character), as
    /// [`CharVocab::chars`] gives it: for a checkpoint's stored vocabulary.
    pub fn from_chars(chars: Vec<char>) -> CharVocab {
        let index = chars
            .iter()
            .enumerate()
            .skip(1)
            .map(|(i, &c)| (c, i as u32))
            .collect();
        CharVocab { chars, index }
    }

    /// Every character by index.
    pub fn chars(&self) -> &[char] {
        &self.chars
    }

    /// The number of indices, the unknown one included.
    pub fn len(&self) -> usize {
        self.chars.len()
    }

    /// Never true: the unknown character is always there.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The indices of `text` (0 for a character outside the vocabulary).
    pub fn encode(&self, text: &str) -> Vec<u32> {
        text.chars()
            .map(|c| self.index.get(&c).copied().unwrap_or(0))
            .collect()
    }

    /// The text of `ids` (U+FFFD for the unknown index and for indices past the end).
    pub fn decode(&self, ids: &[u32]) -> String {
        ids.iter()
            .map(|&i| self.chars.get(i as usize).copied().unwrap_or('\u{FFFD}'))
            .collect()
    }
}

/// The entropy in bits per character of the distribution of `ids` itself: what a model
/// that knew the text's character frequencies and nothing else would score on it. 0 for an
/// empty text.
pub fn unigram_entropy_bits(ids: &[u32]) -> f64 {
    let mut counts: HashMap<u32, usize> = HashMap::new();
    for &i in ids {
        *counts.entry(i).or_default() += 1;
    }
    let n = ids.len() as f64;
    counts
        .values()
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleaning_removes_overstrikes_separators_and_controls() {
        let raw = b"A _\x08b_\x08o_\x08l_\x08d word\x07\n%\nnext\tone\n\xff";
        assert_eq!(clean(raw), "A bold word\n\nnext\tone\n\u{FFFD}");
    }

    #[test]
    fn split_vocab_and_entropy() {
        let dir = std::env::temp_dir().join(format!("cinder-text-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, text) in [
            ("a", "ab\n%\nba"),
            ("b", "cc"),
            ("b.dat", "x"),
            ("c", "abc"),
        ] {
            std::fs::write(dir.join(name), text).unwrap();
        }
        #[cfg(unix)]
        std::os::unix::fs::symlink(dir.join("a"), dir.join("a.u8")).unwrap();
        let files = read_fortunes(&dir).unwrap();
        let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        let (train, val) = split_by_file(files, 2).unwrap();
        assert_eq!(train.len(), 2);
        assert_eq!(val[0].name, "b");
        let text = join(&train);
        assert_eq!(text, "ab\n\nba\n\nabc");
        let v = CharVocab::new(&text, 1);
        assert_eq!(v.chars(), &['\u{FFFD}', '\n', 'a', 'b', 'c']);
        assert_eq!(v.encode("abz"), vec![2, 3, 0]);
        assert_eq!(v.decode(&[4, 2, 9]), "ca\u{FFFD}");
        assert!((unigram_entropy_bits(&[1, 1, 2, 2]) - 1.0).abs() < 1e-12);
        assert_eq!(unigram_entropy_bits(&[]), 0.0);
        assert!(split_by_file(read_fortunes(&dir).unwrap(), 1).is_err());
        assert!(split_by_file(read_fortunes(&dir).unwrap(), 9).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(read_fortunes(&dir).is_err());
    }
}
