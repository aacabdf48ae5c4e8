//! Kernel descriptions, per-dispatch parameters and the shader sources.
//!
//! A [`Kernel`] names a WGSL file from `shaders/`, an entry point, template substitutions (for
//! elementwise op families: `OP` becomes the op's expression) and WGSL `override` constants
//! (workgroup and tile sizes). The device compiles each distinct kernel once and caches the
//! pipeline. Bindings follow one convention in every shader: `@group(0)`, inputs first as
//! `var<storage, read>`, then outputs as `var<storage, read_write>`. Per-dispatch parameters
//! (shapes, strides, scalars) travel as immediates (`var<immediate> p: Params;`), at most
//! [`MAX_PARAMS_BYTES`] bytes.

use crate::error::{Error, Result};

/// Largest parameter block a kernel may declare (`var<immediate>`), in bytes.
pub const MAX_PARAMS_BYTES: usize = 128;

/// Threads per workgroup used by the 1-D kernels (elementwise, copies, random).
pub const WORKGROUP_1D: u32 = 256;

/// Most workgroups wgpu lets one dispatch dimension have.
pub const MAX_GROUPS_PER_DIM: u32 = 65535;

/// Helpers prepended to every shader family's source (`shaders/common.wgsl`).
pub const COMMON: &str = include_str!("../shaders/common.wgsl");

/// Every shader family: (family name, WGSL source, without [`COMMON`]).
pub const SHADERS: &[(&str, &str)] = &[
    ("elementwise", include_str!("../shaders/elementwise.wgsl")),
    ("reduce", include_str!("../shaders/reduce.wgsl")),
    ("softmax", include_str!("../shaders/softmax.wgsl")),
    ("norm", include_str!("../shaders/norm.wgsl")),
    ("rnn", include_str!("../shaders/rnn.wgsl")),
    ("attention", include_str!("../shaders/attention.wgsl")),
    ("matmul", include_str!("../shaders/matmul.wgsl")),
    ("conv2d", include_str!("../shaders/conv2d.wgsl")),
    ("pool2d", include_str!("../shaders/pool2d.wgsl")),
    ("index", include_str!("../shaders/index.wgsl")),
    ("layout", include_str!("../shaders/layout.wgsl")),
    ("random", include_str!("../shaders/random.wgsl")),
    ("linalg", include_str!("../shaders/linalg.wgsl")),
    ("graph", include_str!("../shaders/graph.wgsl")),
    ("optim", include_str!("../shaders/optim.wgsl")),
    ("check", include_str!("../shaders/check.wgsl")),
    ("tsne", include_str!("../shaders/tsne.wgsl")),
];

/// Returns the WGSL source of a shader family, or `None` for an unknown name.
pub fn shader_source(family: &str) -> Option<&'static str> {
    SHADERS.iter().find(|(n, _)| *n == family).map(|(_, s)| *s)
}

/// One compute kernel: a shader family, an entry point and its specialization. Equal
/// kernels (override constants compared bit for bit) share one cached pipeline.
#[derive(Clone, Debug)]
pub struct Kernel {
    /// Shader family (a file in `shaders/`, without `.wgsl`).
    pub family: &'static str,
    /// Entry point in that file.
    pub entry: &'static str,
    /// Template substitutions applied to the source, in order: (placeholder, text).
    pub subst: Vec<(&'static str, String)>,
    /// WGSL `override` constants.
    pub constants: Vec<(&'static str, f64)>,
    /// Number of read-only storage bindings (bindings `0..reads`).
    pub reads: u32,
    /// Number of read-write storage bindings (bindings `reads..reads + writes`).
    pub writes: u32,
    /// Whether the kernel reports bad indices: the device binds its error word (an
    /// `array<atomic<u32>, 4>`, see [`crate::device`]) after the outputs, at binding
    /// `reads + writes`.
    pub error_word: bool,
    /// The workgroup size the host computes its grid for: the entry point's
    /// `@workgroup_size` after override constants must be this (the naga test checks it).
    /// [`WORKGROUP_1D`] unless set with [`Kernel::with_workgroup`].
    pub workgroup: (u32, u32, u32),
}

impl Kernel {
    /// A kernel with no substitutions or constants.
    pub fn new(family: &'static str, entry: &'static str, reads: u32, writes: u32) -> Self {
        Kernel {
            family,
            entry,
            subst: Vec::new(),
            constants: Vec::new(),
            reads,
            writes,
            error_word: false,
            workgroup: (WORKGROUP_1D, 1, 1),
        }
    }

    /// Sets the workgroup size the host's grid assumes (see [`Kernel::workgroup`]).
    pub fn with_workgroup(mut self, size: (u32, u32, u32)) -> Self {
        self.workgroup = size;
        self
    }

    /// Binds the device's error word after the outputs (for kernels that check indices).
    pub fn with_error_word(mut self) -> Self {
        self.error_word = true;
        self
    }

    /// Fills a template placeholder: `{{placeholder}}` in the family's WGSL becomes `text`
    /// (see [`Kernel::source`]; nothing else in the source can be rewritten).
    pub fn with_subst(mut self, placeholder: &'static str, text: impl Into<String>) -> Self {
        self.subst.push((placeholder, text.into()));
        self
    }

    /// Sets a WGSL `override` constant.
    pub fn with_constant(mut self, name: &'static str, value: f64) -> Self {
        self.constants.push((name, value));
        self
    }

    /// The WGSL text: [`COMMON`], then the family's file with its placeholders filled.
    /// A placeholder is written `{{NAME}}` in the file and filled by
    /// [`Kernel::with_subst`]`(NAME, text)`, so a substitution touches nothing but its
    /// placeholder. Returns [`Error::ShaderCompile`] for an unknown family, a substitution
    /// whose placeholder the file does not have, a text that holds a placeholder itself,
    /// or a placeholder left unfilled.
    pub fn source(&self) -> Result<String> {
        let fail = |msg: String| Error::ShaderCompile {
            kernel: self.name(),
            msg,
        };
        let body = shader_source(self.family)
            .ok_or_else(|| fail(format!("no shader family {:?}", self.family)))?;
        let mut src = format!("{COMMON}\n{body}");
        for (k, v) in &self.subst {
            let token = format!("{{{{{k}}}}}");
            if !src.contains(&token) {
                return Err(fail(format!(
                    "shaders/{}.wgsl has no placeholder {token}",
                    self.family
                )));
            }
            if v.contains("{{") {
                return Err(fail(format!(
                    "the text for {token} holds a placeholder: {v:?}"
                )));
            }
            src = src.replace(&token, v);
        }
        if let Some(at) = src.find("{{") {
            let rest = &src[at..];
            let end = rest.find("}}").map_or(rest.len().min(40), |e| e + 2);
            return Err(fail(format!("placeholder {} left unfilled", &rest[..end])));
        }
        Ok(src)
    }

    /// `family::entry` with its substitutions and constants, for messages.
    pub fn name(&self) -> String {
        let mut s = format!("{}::{}", self.family, self.entry);
        for (k, v) in &self.subst {
            s.push_str(&format!(" {k}={v:?}"));
        }
        for (k, v) in &self.constants {
            s.push_str(&format!(" {k}={v}"));
        }
        s
    }
}

impl PartialEq for Kernel {
    fn eq(&self, other: &Self) -> bool {
        self.family == other.family
            && self.entry == other.entry
            && self.subst == other.subst
            && self.reads == other.reads
            && self.writes == other.writes
            && self.error_word == other.error_word
            && self.workgroup == other.workgroup
            && self.constants.len() == other.constants.len()
            && self
                .constants
                .iter()
                .zip(&other.constants)
                .all(|((a, x), (b, y))| a == b && x.to_bits() == y.to_bits())
    }
}

impl Eq for Kernel {}

impl std::hash::Hash for Kernel {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.family.hash(h);
        self.entry.hash(h);
        self.subst.hash(h);
        self.error_word.hash(h);
        self.workgroup.hash(h);
        for (k, v) in &self.constants {
            k.hash(h);
            v.to_bits().hash(h);
        }
    }
}

/// The type of one 32-bit word of a parameter block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Word {
    /// `u32` (also the elements of `array<vec4<u32>, K>` and `array<u32, K>`).
    U32,
    /// `i32`.
    I32,
    /// `f32`.
    F32,
}

/// Per-dispatch parameters, packed as 32-bit words in the order the WGSL `Params` struct
/// declares its fields (all fields must be `u32`, `i32` or `f32`, or arrays of them). Each
/// word remembers its type, and the device checks the whole block against the struct the
/// kernel's entry point reads, word by word, before every dispatch
/// ([`immediate_layout`]): a field added on one side only, or two fields swapped, is an
/// `Err`, not a kernel reading the wrong value.
///
/// Packing never truncates silently: a `usize` above `u32::MAX` (or an array with more
/// values than its fields) marks the block as unfit, and [`crate::Device::dispatch`] then
/// refuses it with [`Error::TooLarge`] naming the kernel ([`Params::check`]).
#[derive(Clone, Debug, Default)]
pub struct Params {
    words: Vec<u32>,
    kinds: Vec<Word>,
    /// The first value that did not fit its field, if any: (field index, value).
    unfit: Option<(usize, usize)>,
}

impl Params {
    /// An empty parameter block.
    pub fn new() -> Self {
        Params {
            words: Vec::with_capacity(32),
            kinds: Vec::with_capacity(32),
            unfit: None,
        }
    }
    fn push(mut self, v: u32, kind: Word) -> Self {
        self.words.push(v);
        self.kinds.push(kind);
        self
    }
    /// Appends a `u32` field.
    pub fn u32(self, v: u32) -> Self {
        self.push(v, Word::U32)
    }
    /// Appends a `u32` field from a `usize`. A value above `u32::MAX` is not truncated: it
    /// marks the block as unfit, so the dispatch is refused ([`Params::check`]).
    pub fn usize(mut self, v: usize) -> Self {
        match u32::try_from(v) {
            Ok(w) => self.push(w, Word::U32),
            Err(_) => {
                self.unfit.get_or_insert((self.words.len(), v));
                self.push(u32::MAX, Word::U32)
            }
        }
    }
    /// Appends an `i32` field.
    pub fn i32(self, v: i32) -> Self {
        self.push(v as u32, Word::I32)
    }
    /// Appends an `f32` field.
    pub fn f32(self, v: f32) -> Self {
        self.push(v.to_bits(), Word::F32)
    }
    /// Appends `n` `u32` fields taken from `vals` (missing entries are filled with `fill`).
    /// A value above `u32::MAX`, or more than `n` values, marks the block as unfit.
    pub fn array(mut self, vals: &[usize], n: usize, fill: u32) -> Self {
        if vals.len() > n {
            self.unfit.get_or_insert((self.words.len() + n, vals.len()));
        }
        for i in 0..n {
            self = match vals.get(i) {
                Some(&v) => self.usize(v),
                None => self.u32(fill),
            };
        }
        self
    }
    /// `Ok` when every value fit its 32-bit field, else [`Error::TooLarge`] naming `op`,
    /// the field and the value (what [`crate::Device::dispatch`] checks before recording).
    pub fn check(&self, op: &'static str) -> Result<()> {
        match self.unfit {
            None => Ok(()),
            Some((field, value)) => Err(Error::TooLarge {
                op,
                shape: vec![field, value],
                bytes: u64::MAX,
                limit: u32::MAX as u64,
            }),
        }
    }
    /// The type of each word, in order.
    pub fn kinds(&self) -> &[Word] {
        &self.kinds
    }
    /// The packed bytes.
    pub fn bytes(&self) -> &[u8] {
        bytemuck::cast_slice(&self.words)
    }
    /// Number of bytes.
    pub fn len(&self) -> usize {
        self.words.len() * 4
    }
    /// True when no field was added.
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }
}

/// The words of the immediate (`var<immediate>`) struct that entry point `entry` of the
/// WGSL `source` reads, by type, from naga's reflection of the shader: what a [`Params`]
/// block for it must hold (empty when the entry point reads none). Struct members may be
/// `u32`, `i32`, `f32`, or arrays of them or of their 4-vectors, with no padding between
/// them (padding after the last one is never read). Returns [`Error::ShaderCompile`] naming `kernel` when the source does not parse or
/// validate, has no such entry point, reads more than one immediate, or lays one out in
/// another way.
pub fn immediate_layout(kernel: &str, source: &str, entry: &str) -> Result<Vec<Word>> {
    use wgpu::naga;
    let fail = |msg: String| Error::ShaderCompile {
        kernel: kernel.to_string(),
        msg,
    };
    let module =
        naga::front::wgsl::parse_str(source).map_err(|e| fail(e.emit_to_string(source)))?;
    let info = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::all(),
    )
    .validate(&module)
    .map_err(|e| fail(e.emit_to_string(source)))?;
    let ep = module
        .entry_points
        .iter()
        .position(|e| e.name == entry)
        .ok_or_else(|| fail(format!("no entry point {entry}")))?;
    let used = info.get_entry_point(ep);
    let imm: Vec<_> = module
        .global_variables
        .iter()
        .filter(|(h, v)| v.space == naga::AddressSpace::Immediate && !used[*h].is_empty())
        .collect();
    let var = match imm.as_slice() {
        [] => return Ok(Vec::new()),
        [(_, v)] => v,
        _ => return Err(fail("the entry point reads more than one immediate".into())),
    };
    let scalar = |s: &naga::Scalar| match (s.kind, s.width) {
        (naga::ScalarKind::Uint, 4) => Some(Word::U32),
        (naga::ScalarKind::Sint, 4) => Some(Word::I32),
        (naga::ScalarKind::Float, 4) => Some(Word::F32),
        _ => None,
    };
    let words_of = |ty: naga::Handle<naga::Type>| -> Option<Vec<Word>> {
        match &module.types[ty].inner {
            naga::TypeInner::Scalar(s) => Some(vec![scalar(s)?]),
            naga::TypeInner::Vector { size, scalar: s } => Some(vec![scalar(s)?; *size as usize]),
            naga::TypeInner::Array {
                base,
                size: naga::ArraySize::Constant(n),
                ..
            } => {
                let one = match &module.types[*base].inner {
                    naga::TypeInner::Scalar(s) => vec![scalar(s)?],
                    naga::TypeInner::Vector { size, scalar: s } => {
                        vec![scalar(s)?; *size as usize]
                    }
                    _ => return None,
                };
                Some(one.repeat(n.get() as usize))
            }
            _ => None,
        }
    };
    let naga::TypeInner::Struct { members, .. } = &module.types[var.ty].inner else {
        return words_of(var.ty).ok_or_else(|| fail("an immediate of an unsupported type".into()));
    };
    let mut out = Vec::with_capacity(members.len());
    for m in members {
        if m.offset as usize != out.len() * 4 {
            return Err(fail(format!(
                "immediate member {:?} at byte {} after {} packed words (padding)",
                m.name,
                m.offset,
                out.len()
            )));
        }
        let w = words_of(m.ty).ok_or_else(|| {
            fail(format!(
                "immediate member {:?} has an unsupported type",
                m.name
            ))
        })?;
        out.extend(w);
    }
    // Trailing padding (a struct's size rounds up to its alignment) is never read.
    Ok(out)
}

/// Elements each invocation of a 1-D elementwise-style kernel handles (`EPT` in
/// `shaders/common.wgsl`).
pub const ELEMS_PER_INVOCATION: usize = 8;

/// Workgroup counts for a 1-D elementwise-style kernel over `n` elements: `n / 8`
/// invocations of [`WORKGROUP_1D`], each looping over 8 elements at a stride of the grid.
/// Errors as [`grid_1d`].
pub fn grid_elems(n: usize) -> Result<(u32, u32, u32)> {
    grid_1d(n.div_ceil(ELEMS_PER_INVOCATION), WORKGROUP_1D)
}

/// Workgroup counts for `threads` invocations in groups of `wg`, folded into a 2-D grid when
/// more than 65535 groups are needed. Shaders rebuild the linear index with
/// `grid_index(workgroup_id, num_workgroups, local_invocation_index, WG)` from
/// `shaders/common.wgsl` and guard the overhang. Returns [`Error::InvalidArgument`] for
/// `wg = 0` and [`Error::TooLarge`] when even the folded grid would pass 65535 x 65535
/// workgroups (never a wrapped count).
pub fn grid_1d(threads: usize, wg: u32) -> Result<(u32, u32, u32)> {
    if wg == 0 {
        return Err(Error::invalid(
            "grid_1d",
            "a workgroup of zero invocations",
            &[threads],
        ));
    }
    let groups = threads.div_ceil(wg as usize).max(1);
    let x = MAX_GROUPS_PER_DIM as usize;
    if groups <= x {
        return Ok((groups as u32, 1, 1));
    }
    match u32::try_from(groups.div_ceil(x)) {
        Ok(y) if y <= MAX_GROUPS_PER_DIM => Ok((MAX_GROUPS_PER_DIM, y, 1)),
        _ => Err(Error::TooLarge {
            op: "grid_1d",
            shape: vec![threads, wg as usize],
            bytes: u64::MAX,
            limit: u32::MAX as u64,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_refuse_values_that_do_not_fit() {
        let p = Params::new().usize(3).u32(7).array(&[1, 2], 4, 9);
        assert!(p.check("t").is_ok());
        assert_eq!(p.len(), 24);
        let p = Params::new().usize(1).usize(u32::MAX as usize + 1);
        assert!(matches!(p.check("t"), Err(Error::TooLarge { op: "t", .. })));
        assert!(Params::new().array(&[1, 2, 3], 2, 0).check("t").is_err());
        assert!(Params::new().array(&[1 << 40], 2, 0).check("t").is_err());
    }

    #[test]
    fn grids_are_checked() {
        assert_eq!(grid_1d(0, 256).unwrap(), (1, 1, 1));
        assert_eq!(grid_1d(256 * 65535, 256).unwrap(), (65535, 1, 1));
        assert_eq!(grid_1d(256 * 65536, 256).unwrap(), (65535, 2, 1));
        assert!(grid_1d(10, 0).is_err());
        assert!(grid_1d(usize::MAX, 1).is_err());
        assert!(grid_1d(65535 * 65535 + 1, 1).is_err());
        assert_eq!(grid_1d(65535 * 65535, 1).unwrap(), (65535, 65535, 1));
        assert!(grid_elems(usize::MAX).is_err());
        assert_eq!(grid_elems(u32::MAX as usize).unwrap(), (65535, 33, 1));
    }
}
