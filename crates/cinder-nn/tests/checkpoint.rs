//! Safetensors checkpoints: bit-exact round trips, the reference byte layout, PyTorch
//! exports loading by name, strict-load mismatches, truncated and corrupt files, and the
//! atomic temp-file + rename write.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use cinder_autograd::Tensor;
use cinder_device::{DType, Device, Error};
use cinder_nn::checkpoint::{self, CheckpointFile, FileDType, HostData, LoadReport};
use cinder_nn::{Init, VarStore};
use safetensors::Dtype;
use safetensors::tensor::TensorView;

fn dev() -> Device {
    Device::default().expect("a wgpu adapter (run scripts/setup.sh)")
}

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let p = std::env::temp_dir().join(format!(
            "cinder-ckpt-{tag}-{}-{nanos}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
    fn listing(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
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

/// A safetensors file built by hand: header padded with spaces to a multiple of 8, its
/// length as a little-endian u64, then the data.
fn file_bytes(header: &str, data: &[u8]) -> Vec<u8> {
    let mut h = header.to_string();
    while !h.len().is_multiple_of(8) {
        h.push(' ');
    }
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(data);
    out
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn bits(t: &Tensor) -> Vec<u32> {
    match t.dtype() {
        DType::F32 => t
            .to_vec::<f32>()
            .unwrap()
            .iter()
            .map(|v| v.to_bits())
            .collect(),
        DType::U32 => t.to_vec::<u32>().unwrap(),
    }
}

/// Every variable of the store: name, shape, dtype and bits.
fn snapshot(vs: &VarStore) -> Vec<(String, Vec<usize>, DType, Vec<u32>)> {
    vs.state()
        .into_iter()
        .map(|(n, t)| (n, t.shape(), t.dtype(), bits(&t)))
        .collect()
}

/// Asserts `r` is `Error::Format` naming `path` with `at` containing `at_part`.
fn assert_format<T: std::fmt::Debug>(r: cinder_device::Result<T>, path: &Path, at_part: &str) {
    match r {
        Err(Error::Format { path: p, at, msg }) => {
            assert_eq!(p, path, "error names the file");
            assert!(
                at.contains(at_part),
                "`at` should contain {at_part:?}; got at={at:?} msg={msg:?}"
            );
        }
        other => panic!("expected Error::Format at {at_part:?}, got {other:?}"),
    }
}

#[test]
fn round_trip_is_bit_exact() {
    let dev = dev();
    let dir = TempDir::new("roundtrip");
    let path = dir.join("state.safetensors");
    let w_bits: Vec<u32> = vec![
        0x7fc0_0001, // quiet NaN with a payload
        0xffc1_2345, // negative quiet NaN with a payload
        0x7f80_0001, // signalling NaN
        0x8000_0000, // -0.0
        0x0000_0000,
        0x7f80_0000, // inf
        0xff80_0000, // -inf
        0x0000_0001, // smallest subnormal
        0x7f7f_ffff, // f32::MAX
        0x3dcc_cccd, // 0.1
    ];
    let w_vals: Vec<f32> = w_bits.iter().map(|&b| f32::from_bits(b)).collect();
    let tensors = vec![
        (
            "w".to_string(),
            Tensor::from_slice(&dev, &w_vals, &[2, 5]).unwrap(),
        ),
        (
            "idx".to_string(),
            Tensor::from_slice(&dev, &[0u32, 7, u32::MAX], &[3]).unwrap(),
        ),
        (
            "empty".to_string(),
            Tensor::from_slice::<f32>(&dev, &[], &[0, 3]).unwrap(),
        ),
        (
            "empty_u".to_string(),
            Tensor::from_slice::<u32>(&dev, &[], &[2, 0]).unwrap(),
        ),
        ("s".to_string(), Tensor::scalar(&dev, -1.5).unwrap()),
    ];
    let mut meta = BTreeMap::new();
    meta.insert("epoch".to_string(), "3".to_string());
    meta.insert("note".to_string(), "quote \" backslash \\ é".to_string());
    // NaN and infinities are written only when asked for.
    let keep = checkpoint::SaveOptions::allow_non_finite();
    let e = checkpoint::save(&path, &tensors, &meta)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("tensor `w` holds 5 NaN or infinite value(s) of 10"),
        "{e}"
    );
    assert!(!path.exists());
    checkpoint::save_with(&path, &tensors, &meta, &keep).unwrap();

    let (loaded, meta2) = checkpoint::load_with_metadata(&path, &dev).unwrap();
    assert_eq!(meta2, meta);
    let names: Vec<&str> = loaded.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["empty", "empty_u", "idx", "s", "w"],
        "sorted by name"
    );
    let expect: BTreeMap<&str, (&[usize], DType, Vec<u32>)> = [
        ("w", (&[2usize, 5][..], DType::F32, w_bits.clone())),
        ("idx", (&[3usize][..], DType::U32, vec![0, 7, u32::MAX])),
        ("empty", (&[0usize, 3][..], DType::F32, vec![])),
        ("empty_u", (&[2usize, 0][..], DType::U32, vec![])),
        ("s", (&[][..], DType::F32, vec![(-1.5f32).to_bits()])),
    ]
    .into_iter()
    .collect();
    for (n, t) in &loaded {
        let (shape, dtype, b) = &expect[n.as_str()];
        assert_eq!(t.shape(), *shape, "{n}");
        assert_eq!(t.dtype(), *dtype, "{n}");
        assert_eq!(&bits(t), b, "{n}");
    }

    // Same tensors in another order: the same bytes (deterministic, sorted by name).
    let first = std::fs::read(&path).unwrap();
    let mut reversed = tensors.clone();
    reversed.reverse();
    checkpoint::save_with(&path, &reversed, &meta, &keep).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), first);
    assert_eq!(dir.listing(), ["state.safetensors"]);
}

#[test]
fn writes_the_reference_byte_layout() {
    let dev = dev();
    let dir = TempDir::new("layout");
    let path = dir.join("m.safetensors");
    let tensors = vec![
        (
            "b".to_string(),
            Tensor::from_slice(&dev, &[1.0f32, 2.0], &[2]).unwrap(),
        ),
        (
            "a".to_string(),
            Tensor::from_slice(&dev, &[7u32], &[]).unwrap(),
        ),
    ];
    let mut meta = BTreeMap::new();
    meta.insert("format".to_string(), "pt".to_string());
    checkpoint::save(&path, &tensors, &meta).unwrap();
    // The reference writer's order: by dtype, widest first (F32 before U32), then name.
    let header = r#"{"__metadata__":{"format":"pt"},"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"U32","shape":[],"data_offsets":[8,12]}}"#;
    let mut data = f32_bytes(&[1.0, 2.0]);
    data.extend(7u32.to_le_bytes());
    let expected = file_bytes(header, &data);
    let got = std::fs::read(&path).unwrap();
    assert_eq!(got, expected);
    // The same bytes as the `safetensors` crate's own writer.
    let b = f32_bytes(&[1.0, 2.0]);
    let a = 7u32.to_le_bytes();
    let views = [
        ("b", TensorView::new(Dtype::F32, vec![2], &b).unwrap()),
        ("a", TensorView::new(Dtype::U32, vec![], &a).unwrap()),
    ];
    let meta_hash = meta.clone().into_iter().collect();
    assert_eq!(got, safetensors::serialize(views, Some(meta_hash)).unwrap());
    let n = u64::from_le_bytes(got[..8].try_into().unwrap());
    assert_eq!(n % 8, 0, "header padded to a multiple of 8");
    assert_eq!(
        got[8 + header.len()..8 + n as usize],
        vec![b' '; n as usize - header.len()]
    );
}

/// Conv2d(3, 4, 3) `conv1`, BatchNorm2d(4) `bn`, Linear(5, 2) `fc`, exported as
/// `safetensors.torch.save_file(model.state_dict(), path)` writes them: data sorted by
/// dtype (I64 first) then name, header in data order, no `__metadata__`.
#[test]
fn pytorch_state_dict_loads_by_name() {
    let dev = dev();
    let dir = TempDir::new("torch");
    let path = dir.join("torch.safetensors");
    let vals = |n: usize, k: f32| -> Vec<f32> { (0..n).map(|i| i as f32 * 0.01 - k).collect() };
    let conv_w = vals(4 * 3 * 3 * 3, 0.5);
    let conv_b = vals(4, 0.1);
    let bn_w = vals(4, -1.0);
    let bn_b = vals(4, 0.2);
    let bn_mean = vals(4, 0.3);
    let bn_var = vals(4, -2.0);
    let fc_w = vals(2 * 5, 0.7);
    let fc_b = vals(2, 0.05);
    // (name, dtype, shape, bytes), in the order save_file lays them out.
    let entries: Vec<(&str, &str, &str, Vec<u8>)> = vec![
        (
            "bn.num_batches_tracked",
            "I64",
            "[]",
            12i64.to_le_bytes().to_vec(),
        ),
        ("bn.bias", "F32", "[4]", f32_bytes(&bn_b)),
        ("bn.running_mean", "F32", "[4]", f32_bytes(&bn_mean)),
        ("bn.running_var", "F32", "[4]", f32_bytes(&bn_var)),
        ("bn.weight", "F32", "[4]", f32_bytes(&bn_w)),
        ("conv1.bias", "F32", "[4]", f32_bytes(&conv_b)),
        ("conv1.weight", "F32", "[4,3,3,3]", f32_bytes(&conv_w)),
        ("fc.bias", "F32", "[2]", f32_bytes(&fc_b)),
        ("fc.weight", "F32", "[2,5]", f32_bytes(&fc_w)),
    ];
    let mut header = String::from("{");
    let mut data = Vec::new();
    for (i, (name, dtype, shape, bytes)) in entries.iter().enumerate() {
        if i > 0 {
            header.push(',');
        }
        header.push_str(&format!(
            r#""{name}":{{"dtype":"{dtype}","shape":{shape},"data_offsets":[{},{}]}}"#,
            data.len(),
            data.len() + bytes.len()
        ));
        data.extend_from_slice(bytes);
    }
    header.push('}');
    std::fs::write(&path, file_bytes(&header, &data)).unwrap();

    // Built in another order than the file, with other initial values.
    let vs = VarStore::new(&dev, 1);
    let root = vs.root();
    let fc = root.pp("fc");
    fc.var("weight", &[2, 5], Init::Constant(9.0)).unwrap();
    fc.var("bias", &[2], Init::Constant(9.0)).unwrap();
    let conv = root.pp("conv1");
    conv.var("weight", &[4, 3, 3, 3], Init::Constant(9.0))
        .unwrap();
    conv.var("bias", &[4], Init::Constant(9.0)).unwrap();
    let bn = root.pp("bn");
    bn.var("weight", &[4], Init::Constant(9.0)).unwrap();
    bn.var("bias", &[4], Init::Constant(9.0)).unwrap();
    bn.buffer(
        "running_mean",
        Tensor::from_slice(&dev, &[0f32; 4], &[4]).unwrap(),
    )
    .unwrap();
    bn.buffer(
        "running_var",
        Tensor::from_slice(&dev, &[1f32; 4], &[4]).unwrap(),
    )
    .unwrap();
    bn.buffer(
        "num_batches_tracked",
        Tensor::from_slice(&dev, &[0u32], &[]).unwrap(),
    )
    .unwrap();
    vs.load(&path).unwrap();

    let f = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
    let want: Vec<(&str, Vec<usize>, Vec<u32>)> = vec![
        ("fc.weight", vec![2, 5], f(&fc_w)),
        ("fc.bias", vec![2], f(&fc_b)),
        ("conv1.weight", vec![4, 3, 3, 3], f(&conv_w)),
        ("conv1.bias", vec![4], f(&conv_b)),
        ("bn.weight", vec![4], f(&bn_w)),
        ("bn.bias", vec![4], f(&bn_b)),
        ("bn.running_mean", vec![4], f(&bn_mean)),
        ("bn.running_var", vec![4], f(&bn_var)),
        ("bn.num_batches_tracked", vec![], vec![12]),
    ];
    for (name, shape, b) in want {
        let t = vs.get(name).unwrap();
        assert_eq!(t.shape(), shape.as_slice(), "{name}");
        assert_eq!(bits(&t), b, "{name}");
    }
    // Parameters stay parameters (trainable) after a load.
    assert_eq!(vs.parameters().len(), 6);
    assert!(vs.parameters().iter().all(|p| p.requires_grad()));

    // A store without `num_batches_tracked` (built by hand; BatchNorm itself keeps the
    // counter): the strict load names it and changes nothing; the partial load takes the
    // rest.
    let vs2 = VarStore::new(&dev, 2);
    for (name, t) in vs.state() {
        if name != "bn.num_batches_tracked" {
            let leaf = name.rsplit_once('.').unwrap();
            let p = vs2.root().pp(leaf.0);
            if vs.named_buffers().iter().any(|(n, _)| *n == name) {
                p.buffer(leaf.1, Tensor::zeros(&dev, &t.shape()).unwrap())
                    .unwrap();
            } else {
                p.var(leaf.1, &t.shape(), Init::Constant(0.0)).unwrap();
            }
        }
    }
    let before = snapshot(&vs2);
    match vs2.load(&path) {
        Err(Error::InvalidArgument { msg, .. }) => {
            assert!(
                msg.contains("unexpected tensor `bn.num_batches_tracked`"),
                "{msg}"
            )
        }
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
    assert_eq!(snapshot(&vs2), before);
    let report = vs2.load_partial(&path).unwrap();
    assert!(report.missing.is_empty());
    assert_eq!(report.unexpected, ["bn.num_batches_tracked"]);
    assert_eq!(report.loaded.len(), 8);
    assert_eq!(bits(&vs2.get("fc.weight").unwrap()), f(&fc_w));

    let ck = checkpoint::read(&path).unwrap();
    assert!(ck.metadata.is_empty());
    let nbt = ck
        .tensors
        .iter()
        .find(|t| t.name == "bn.num_batches_tracked")
        .unwrap();
    assert_eq!(nbt.file_dtype, FileDType::I64);
    assert_eq!(nbt.data, HostData::U32(vec![12]));
}

#[test]
fn converts_half_bfloat_double_and_integer_dtypes() {
    let dir = TempDir::new("convert");
    let path = dir.join("c.safetensors");
    let f16: Vec<u16> = vec![
        0x3c00, 0xc000, 0x7bff, 0x0001, 0x8000, 0x7c00, 0xfc00, 0x7e00, 0x0400,
    ];
    let bf16: Vec<u16> = vec![0x3f80, 0xc049, 0x0001];
    let f64s: Vec<f64> = vec![0.1, -2.5, 1e-50, f64::INFINITY];
    let i64s: Vec<i64> = vec![0, 4_294_967_295];
    let i32s: Vec<i32> = vec![5, 0];
    let mut data = Vec::new();
    let mut header = String::from("{");
    let mut add = |name: &str, dtype: &str, n: usize, bytes: Vec<u8>| {
        if header.len() > 1 {
            header.push(',');
        }
        header.push_str(&format!(
            r#""{name}":{{"dtype":"{dtype}","shape":[{n}],"data_offsets":[{},{}]}}"#,
            data.len(),
            data.len() + bytes.len()
        ));
        data.extend(bytes);
    };
    add(
        "h",
        "F16",
        f16.len(),
        f16.iter().flat_map(|v| v.to_le_bytes()).collect(),
    );
    add(
        "b",
        "BF16",
        bf16.len(),
        bf16.iter().flat_map(|v| v.to_le_bytes()).collect(),
    );
    add(
        "d",
        "F64",
        f64s.len(),
        f64s.iter().flat_map(|v| v.to_le_bytes()).collect(),
    );
    add(
        "l",
        "I64",
        i64s.len(),
        i64s.iter().flat_map(|v| v.to_le_bytes()).collect(),
    );
    add(
        "i",
        "I32",
        i32s.len(),
        i32s.iter().flat_map(|v| v.to_le_bytes()).collect(),
    );
    header.push('}');
    std::fs::write(&path, file_bytes(&header, &data)).unwrap();

    let ck = checkpoint::read(&path).unwrap();
    let get = |n: &str| ck.tensors.iter().find(|t| t.name == n).unwrap().clone();
    let fbits = |d: &HostData| match d {
        HostData::F32(v) => v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>(),
        HostData::U32(_) => panic!("expected f32"),
    };
    let h = get("h");
    assert_eq!(h.file_dtype, FileDType::F16);
    let want_h: Vec<u32> = [1.0f32, -2.0, 65504.0, 2f32.powi(-24), -0.0, f32::INFINITY]
        .iter()
        .map(|v| v.to_bits())
        .chain([0xff80_0000, 0x7fc0_0000, 2f32.powi(-14).to_bits()])
        .collect();
    assert_eq!(fbits(&h.data), want_h);
    assert_eq!(
        fbits(&get("b").data),
        vec![0x3f80_0000, 0xc049_0000, 0x0001_0000]
    );
    let want_d: Vec<u32> = [0.1f32, -2.5, 0.0, f32::INFINITY]
        .iter()
        .map(|v| v.to_bits())
        .collect();
    assert_eq!(fbits(&get("d").data), want_d);
    assert_eq!(get("l").data, HostData::U32(vec![0, u32::MAX]));
    assert_eq!(get("i").data, HostData::U32(vec![5, 0]));
    assert_eq!(get("i").file_dtype.loaded_as(), DType::U32);

    // Values that do not convert are errors naming the tensor and the element.
    let bad: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "I64",
            [3i64, -1].iter().flat_map(|v| v.to_le_bytes()).collect(),
            "tensor `x` element 1",
        ),
        (
            "I64",
            [1i64 << 32, 0]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
            "tensor `x` element 0",
        ),
        (
            "F64",
            [1.0f64, 1e300]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
            "tensor `x` element 1",
        ),
    ];
    for (dtype, bytes, at) in bad {
        let header = format!(
            r#"{{"x":{{"dtype":"{dtype}","shape":[2],"data_offsets":[0,{}]}}}}"#,
            bytes.len()
        );
        std::fs::write(&path, file_bytes(&header, &bytes)).unwrap();
        assert_format(checkpoint::read(&path), &path, at);
    }
    let header = r#"{"x":{"dtype":"I32","shape":[1],"data_offsets":[0,4]}}"#;
    std::fs::write(&path, file_bytes(header, &(-7i32).to_le_bytes())).unwrap();
    assert_format(checkpoint::read(&path), &path, "tensor `x` element 0");

    // Signalling NaNs stay NaN with their payload; the conversion sets the quiet bit.
    let header = r#"{"h":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},"b":{"dtype":"BF16","shape":[1],"data_offsets":[4,6]}}"#;
    let bytes: Vec<u8> = [0x7c01u16, 0xfd01, 0x7f81]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    std::fs::write(&path, file_bytes(header, &bytes)).unwrap();
    let ck = checkpoint::read(&path).unwrap();
    let get = |n: &str| ck.tensors.iter().find(|t| t.name == n).unwrap().clone();
    assert_eq!(fbits(&get("h").data), [0x7fc0_2000, 0xffe0_2000]);
    assert_eq!(fbits(&get("b").data), [0x7fc1_0000]);
}

/// A store with f32 parameters `a` [2, 2] and `b` [3] and a u32 buffer `c` [].
fn small_store(dev: &Device) -> VarStore {
    small_store_seeded(dev, 7)
}

/// [`small_store`] with `a` drawn from `seed` and `c` equal to `seed`.
fn small_store_seeded(dev: &Device, seed: u64) -> VarStore {
    let vs = VarStore::new(dev, seed);
    vs.root()
        .var("a", &[2, 2], Init::Uniform { lo: -1.0, hi: 1.0 })
        .unwrap();
    vs.root().var("b", &[3], Init::Constant(0.25)).unwrap();
    vs.root()
        .buffer("c", Tensor::from_slice(dev, &[seed as u32], &[]).unwrap())
        .unwrap();
    vs
}

#[test]
fn strict_load_names_the_first_mismatch_and_changes_nothing() {
    let dev = dev();
    let dir = TempDir::new("mismatch");
    let path = dir.join("bad.safetensors");
    let vs = small_store(&dev);
    let before = snapshot(&vs);
    let a = Tensor::from_slice(&dev, &[5.0f32, 6.0, 7.0, 8.0], &[2, 2]).unwrap();
    let b = Tensor::from_slice(&dev, &[1.0f32, 2.0, 3.0], &[3]).unwrap();
    let c = Tensor::from_slice(&dev, &[9u32], &[]).unwrap();
    let named = |v: Vec<(&str, &Tensor)>| -> Vec<(String, Tensor)> {
        v.into_iter()
            .map(|(n, t)| (n.to_string(), t.clone()))
            .collect()
    };
    let b4 = Tensor::from_slice(&dev, &[1.0f32; 4], &[4]).unwrap();
    let c_f32 = Tensor::scalar(&dev, 9.0).unwrap();
    let d = Tensor::scalar(&dev, 1.0).unwrap();
    // `a` always matches and would be written first by a load that does not check first.
    let cases: Vec<(&str, checkpoint::NamedTensors, &str)> = vec![
        (
            "missing",
            named(vec![("a", &a), ("b", &b)]),
            "missing tensor `c`",
        ),
        (
            "unexpected",
            named(vec![("a", &a), ("b", &b), ("c", &c), ("d", &d)]),
            "unexpected tensor `d`",
        ),
        (
            "shape",
            named(vec![("a", &a), ("b", &b4), ("c", &c)]),
            "tensor `b` has shape [4] in the source but [3] in the store",
        ),
        (
            "dtype",
            named(vec![("a", &a), ("b", &b), ("c", &c_f32)]),
            "tensor `c` has dtype F32 in the source but U32 in the store",
        ),
    ];
    let path_str = path.display().to_string();
    for (what, tensors, want) in cases {
        checkpoint::save(&path, &tensors, &BTreeMap::new()).unwrap();
        match vs.load(&path) {
            Err(Error::InvalidArgument { op, msg, .. }) => {
                assert_eq!(op, "VarStore::load", "{what}");
                assert!(msg.contains(want), "{what}: {msg}");
                assert!(msg.contains(&path_str), "{what}: names the file: {msg}");
            }
            other => panic!("{what}: expected InvalidArgument, got {other:?}"),
        }
        assert_eq!(snapshot(&vs), before, "{what}: store unchanged");
        // The same check from tensors already on the device.
        match vs.load_state(&tensors, true) {
            Err(Error::InvalidArgument { msg, .. }) => assert!(msg.contains(want), "{what}: {msg}"),
            other => panic!("{what}: expected InvalidArgument, got {other:?}"),
        }
        assert_eq!(
            snapshot(&vs),
            before,
            "{what}: store unchanged by load_state"
        );
    }

    // Non-strict: missing and unexpected names are reported, matching ones loaded.
    checkpoint::save(&path, &named(vec![("a", &a), ("d", &d)]), &BTreeMap::new()).unwrap();
    let report = vs.load_partial(&path).unwrap();
    assert_eq!(
        report,
        LoadReport {
            loaded: vec!["a".into()],
            missing: vec!["b".into(), "c".into()],
            unexpected: vec!["d".into()],
        }
    );
    let after = snapshot(&vs);
    assert_eq!(after[0].3, [5.0f32, 6.0, 7.0, 8.0].map(f32::to_bits));
    assert_eq!(after[1..], before[1..]);

    // Non-strict still refuses a shape mismatch, before changing anything.
    let vs2 = small_store(&dev);
    let before2 = snapshot(&vs2);
    checkpoint::save(&path, &named(vec![("a", &a), ("b", &b4)]), &BTreeMap::new()).unwrap();
    assert!(matches!(
        vs2.load_partial(&path),
        Err(Error::InvalidArgument { .. })
    ));
    assert_eq!(snapshot(&vs2), before2);

    // A file that is not there is an Io error naming it.
    let gone = dir.join("gone.safetensors");
    match vs.load(&gone) {
        Err(Error::Io { path: p, .. }) => assert_eq!(p, gone),
        other => panic!("expected Io, got {other:?}"),
    }
}

#[test]
fn var_store_round_trip_and_combined_model_optimizer_file() {
    let dev = dev();
    let dir = TempDir::new("vs");
    let path = dir.join("model.safetensors");
    let vs = small_store(&dev);
    vs.save(&path).unwrap();
    let vs2 = VarStore::new(&dev, 99);
    vs2.root().var("b", &[3], Init::Constant(0.0)).unwrap();
    vs2.root().var("a", &[2, 2], Init::Constant(0.0)).unwrap();
    vs2.root()
        .buffer("c", Tensor::from_slice(&dev, &[0u32], &[]).unwrap())
        .unwrap();
    vs2.load(&path).unwrap();
    let by_name = |v: Vec<(String, Vec<usize>, DType, Vec<u32>)>| {
        v.into_iter()
            .map(|(n, s, d, b)| (n, (s, d, b)))
            .collect::<BTreeMap<_, _>>()
    };
    assert_eq!(by_name(snapshot(&vs2)), by_name(snapshot(&vs)));

    // One file: `model.` + `optim.` prefixes.
    let optim_state = vec![
        (
            "a.exp_avg".to_string(),
            Tensor::from_slice(&dev, &[0.5f32, -0.0, 1e-30, 3.0], &[2, 2]).unwrap(),
        ),
        (
            "step".to_string(),
            Tensor::from_slice(&dev, &[3u32], &[]).unwrap(),
        ),
    ];
    let model = vs.state();
    let all = [
        checkpoint::with_prefix("model.", &model),
        checkpoint::with_prefix("optim.", &optim_state),
    ]
    .concat();
    let both = dir.join("train.safetensors");
    checkpoint::save(&both, &all, &BTreeMap::new()).unwrap();
    let loaded = checkpoint::load(&both, &dev).unwrap();
    let names: Vec<&str> = loaded.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "model.a",
            "model.b",
            "model.c",
            "optim.a.exp_avg",
            "optim.step"
        ]
    );
    let (m, rest) = checkpoint::take_prefix("model.", loaded);
    let (o, rest) = checkpoint::take_prefix("optim.", rest);
    assert!(rest.is_empty());
    let vs3 = small_store(&dev);
    vs3.root().var("extra", &[1], Init::Constant(4.0)).unwrap();
    let report = vs3.load_state(&m, false).unwrap();
    assert_eq!(report.missing, ["extra"]);
    assert_eq!(report.loaded, ["a", "b", "c"]);
    // The store holds copies: writing the source afterwards does not reach it.
    assert_eq!(m[0].0, "a");
    let a_loaded = bits(&vs3.get("a").unwrap());
    m[0].1.raw().write(&[0.0f32; 4]).unwrap();
    assert_eq!(bits(&vs3.get("a").unwrap()), a_loaded);
    assert_ne!(a_loaded, [0u32; 4]);
    assert_eq!(
        by_name(snapshot(&vs3)).remove("a"),
        by_name(snapshot(&vs)).remove("a")
    );
    assert_eq!(o[0].0, "a.exp_avg");
    assert_eq!(bits(&o[0].1), bits(&optim_state[0].1));
    assert_eq!((o[1].0.as_str(), bits(&o[1].1)), ("step", vec![3]));
}

#[test]
fn every_truncation_and_trailing_bytes_are_errors() {
    let dev = dev();
    let dir = TempDir::new("trunc");
    let good = dir.join("good.safetensors");
    let tensors = vec![
        (
            "x".to_string(),
            Tensor::from_slice(&dev, &[1.0f32, 2.0, 3.0], &[3]).unwrap(),
        ),
        (
            "y".to_string(),
            Tensor::from_slice(&dev, &[4u32], &[]).unwrap(),
        ),
    ];
    let mut meta = BTreeMap::new();
    meta.insert("k".to_string(), "v".to_string());
    checkpoint::save(&good, &tensors, &meta).unwrap();
    let full = std::fs::read(&good).unwrap();
    assert!(checkpoint::read(&good).is_ok());
    let cut = dir.join("cut.safetensors");
    for len in 0..full.len() {
        std::fs::write(&cut, &full[..len]).unwrap();
        match checkpoint::read(&cut) {
            Err(Error::Format { path, .. }) => assert_eq!(path, cut, "prefix {len}"),
            other => panic!("prefix of {len} bytes: expected Error::Format, got {other:?}"),
        }
    }
    let vs = small_store(&dev);
    let before = snapshot(&vs);
    std::fs::write(&cut, &full[..full.len() - 1]).unwrap();
    assert!(matches!(vs.load(&cut), Err(Error::Format { .. })));
    assert_eq!(snapshot(&vs), before);
    let mut longer = full.clone();
    longer.push(0);
    std::fs::write(&cut, &longer).unwrap();
    assert_format(checkpoint::read(&cut), &cut, "byte");
}

#[test]
fn corrupt_headers_are_errors_naming_the_field() {
    let dir = TempDir::new("corrupt");
    let path = dir.join("bad.safetensors");
    let f4 = f32_bytes(&[1.0, 2.0]);
    let with_len = |n: u64, rest: &[u8]| {
        let mut v = n.to_le_bytes().to_vec();
        v.extend_from_slice(rest);
        v
    };
    let t = |h: &str, d: &[u8]| file_bytes(h, d);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "length u64::MAX",
            with_len(u64::MAX, b"{}      "),
            "header length",
        ),
        (
            "length 2^40",
            with_len(1 << 40, b"{}      "),
            "header length",
        ),
        (
            "length past the end",
            with_len(50_000_000, b"{}      "),
            "header length",
        ),
        (
            "not an object",
            t("[]", &[]),
            "header byte 0 (file offset 8)",
        ),
        ("invalid JSON", t(r#"{"a":"#, &[]), "header byte"),
        ("trailing garbage", t("{} x", &[]), "header byte"),
        (
            "not UTF-8",
            {
                let mut v = t(r#"{"a":1}"#, &[]);
                v[10] = 0xff;
                v
            },
            "header byte",
        ),
        (
            "duplicate name",
            t(
                r#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
                &f4,
            ),
            "`w`",
        ),
        (
            "empty name",
            t(
                r#"{"":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#,
                &f4,
            ),
            "``",
        ),
        (
            "unsupported dtype",
            t(
                r#"{"w":{"dtype":"F8_E4M3","shape":[8],"data_offsets":[0,8]}}"#,
                &f4,
            ),
            "`w`.dtype",
        ),
        (
            "dtype not a string",
            t(r#"{"w":{"dtype":4,"shape":[2],"data_offsets":[0,8]}}"#, &f4),
            "`w`.dtype",
        ),
        (
            "missing dtype",
            t(r#"{"w":{"shape":[2],"data_offsets":[0,8]}}"#, &f4),
            "`w`.dtype",
        ),
        (
            "unknown field",
            t(
                r#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"foo":1}}"#,
                &f4,
            ),
            "`w`.foo",
        ),
        ("tensor not an object", t(r#"{"w":[1,2]}"#, &f4), "`w`"),
        (
            "negative dimension",
            t(
                r#"{"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}"#,
                &f4,
            ),
            "`w`.shape",
        ),
        (
            "fractional dimension",
            t(
                r#"{"w":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}}"#,
                &f4,
            ),
            "`w`.shape",
        ),
        (
            "shape overflows",
            t(
                r#"{"w":{"dtype":"F32","shape":[4611686018427387904,4611686018427387904],"data_offsets":[0,8]}}"#,
                &f4,
            ),
            "`w`.shape",
        ),
        (
            "offsets disagree with shape",
            t(
                r#"{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#,
                &f4,
            ),
            "`w`.data_offsets",
        ),
        (
            "begin after end",
            t(
                r#"{"w":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}}"#,
                &f4,
            ),
            "`w`.data_offsets",
        ),
        (
            "three offsets",
            t(
                r#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4,8]}}"#,
                &f4,
            ),
            "`w`.data_offsets",
        ),
        (
            "absurd offsets",
            t(
                r#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[18446744073709551611,18446744073709551615]}}"#,
                &f4,
            ),
            "`w`.data_offsets",
        ),
        (
            "overlapping ranges",
            t(
                r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#,
                &f32_bytes(&[1.0, 2.0, 3.0]),
            ),
            "`b`.data_offsets",
        ),
        (
            "gap between ranges",
            t(
                r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#,
                &f32_bytes(&[1.0, 2.0, 3.0]),
            ),
            "`b`.data_offsets",
        ),
        (
            "data past the end",
            t(
                r#"{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#,
                &f4,
            ),
            "byte",
        ),
        (
            "metadata not a map of strings",
            t(r#"{"__metadata__":{"epoch":3}}"#, &[]),
            "`__metadata__`.epoch",
        ),
        (
            "metadata not an object",
            t(r#"{"__metadata__":[]}"#, &[]),
            "`__metadata__`",
        ),
    ];
    for (what, bytes, at) in cases {
        std::fs::write(&path, &bytes).unwrap();
        match checkpoint::read(&path) {
            Err(Error::Format {
                path: p,
                at: got,
                msg,
            }) => {
                assert_eq!(p, path, "{what}");
                assert!(got.contains(at), "{what}: at={got:?} msg={msg}");
            }
            other => panic!("{what}: expected Error::Format, got {other:?}"),
        }
    }
    // The message of a Format error names the file too.
    let e = checkpoint::read(&path).unwrap_err().to_string();
    assert!(e.starts_with(&path.display().to_string()), "{e}");
}

#[test]
fn corrupting_any_header_byte_never_panics() {
    let dev = dev();
    let dir = TempDir::new("fuzz");
    let good = dir.join("good.safetensors");
    let tensors = vec![
        (
            "layer.weight".to_string(),
            Tensor::from_slice(&dev, &[1.0f32, -2.0, 3.5, 0.0], &[2, 2]).unwrap(),
        ),
        (
            "n".to_string(),
            Tensor::from_slice(&dev, &[4u32], &[]).unwrap(),
        ),
    ];
    let mut meta = BTreeMap::new();
    meta.insert("epoch".to_string(), "12".to_string());
    checkpoint::save(&good, &tensors, &meta).unwrap();
    let full = std::fs::read(&good).unwrap();
    let header_end = 8 + u64::from_le_bytes(full[..8].try_into().unwrap()) as usize;
    let original = checkpoint::read(&good).unwrap();
    let bad = dir.join("bad.safetensors");
    let replacements = [
        0x00u8, 0xff, b'"', b'{', b'}', b'[', b']', b'9', b'0', b',', b':', b' ', b'-',
    ];
    let (mut errs, mut oks) = (0, 0);
    for pos in 0..header_end {
        for &r in &replacements {
            if full[pos] == r {
                continue;
            }
            let mut b = full.clone();
            b[pos] = r;
            std::fs::write(&bad, &b).unwrap();
            let res = std::panic::catch_unwind(|| checkpoint::read(&bad))
                .unwrap_or_else(|_| panic!("panic with byte {pos} set to {r:#x}"));
            match res {
                Err(Error::Format { path, .. }) => {
                    assert_eq!(path, bad);
                    errs += 1;
                }
                Err(e) => panic!("byte {pos} = {r:#x}: unexpected error kind {e:?}"),
                Ok(ck) => {
                    // Any change to the length field must be caught, and a corruption
                    // that still parses (a name or metadata character) never changes a
                    // tensor's shape, dtype or data.
                    assert!(
                        pos >= 8,
                        "byte {pos} = {r:#x} of the header length accepted"
                    );
                    let strip = |c: &checkpoint::Checkpoint| {
                        let mut v: Vec<_> = c
                            .tensors
                            .iter()
                            .map(|t| (t.shape.clone(), t.file_dtype, t.data.clone()))
                            .collect();
                        v.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
                        v
                    };
                    assert_eq!(strip(&ck), strip(&original), "byte {pos} = {r:#x}");
                    oks += 1;
                }
            }
        }
    }
    // Most corruptions are structural; those inside a name or a metadata value (about one
    // in ten here) still give a valid file.
    assert!(errs > 4 * oks, "errs {errs} oks {oks}");
}

#[test]
fn a_writer_killed_before_rename_leaves_the_previous_checkpoint() {
    let dev = dev();
    let dir = TempDir::new("killed");
    let path = dir.join("ckpt.safetensors");
    let vs = small_store(&dev);
    vs.save(&path).unwrap();
    let previous = std::fs::read(&path).unwrap();
    let saved = snapshot(&vs);

    // The new checkpoint is fully written and fsynced to the temp file, then the process
    // "dies": no rename, no destructor.
    let newer = vec![(
        "a".to_string(),
        Tensor::from_slice(&dev, &[0.0f32; 4], &[2, 2]).unwrap(),
    )];
    let pending = checkpoint::prepare_save(&path, &newer, &BTreeMap::new()).unwrap();
    let temp = pending.temp_path().to_path_buf();
    assert_eq!(pending.target(), path.as_path());
    std::mem::forget(pending);
    let temp_name = temp.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        temp_name.starts_with(".ckpt.safetensors.tmp-"),
        "temp file next to the target: {temp_name}"
    );
    assert_eq!(temp.parent(), path.parent());
    assert!(temp.exists());
    assert_eq!(
        checkpoint::read(&temp).unwrap().tensors.len(),
        1,
        "temp file is complete"
    );

    assert_eq!(std::fs::read(&path).unwrap(), previous, "target untouched");
    let other = small_store_seeded(&dev, 8);
    assert_ne!(snapshot(&other), saved);
    other.load(&path).unwrap();
    assert_eq!(
        snapshot(&other),
        saved,
        "previous checkpoint loads unchanged"
    );

    // The next save still works; the temp file is this (live) process's, so it is kept.
    vs.save(&path).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), previous);
    assert_eq!(
        dir.listing(),
        vec![temp_name, "ckpt.safetensors".to_string()]
    );

    // A pending save dropped without commit (an error between write and rename) removes
    // its temp file and leaves the target.
    let pending = checkpoint::prepare_save(&path, &newer, &BTreeMap::new()).unwrap();
    let temp2 = pending.temp_path().to_path_buf();
    assert!(temp2.exists());
    drop(pending);
    assert!(!temp2.exists());
    assert_eq!(std::fs::read(&path).unwrap(), previous);
}

#[test]
fn successful_save_leaves_only_the_target() {
    let dev = dev();
    let dir = TempDir::new("clean");
    let path = dir.join("m.safetensors");
    let vs = small_store(&dev);
    vs.save(&path).unwrap();
    assert_eq!(dir.listing(), ["m.safetensors"]);
    vs.save(&path).unwrap(); // overwrite
    assert_eq!(dir.listing(), ["m.safetensors"]);
}

#[test]
fn failed_saves_leave_no_file_behind() {
    let dev = dev();
    let dir = TempDir::new("fail");
    let x = Tensor::from_slice(&dev, &[1.0f32], &[1]).unwrap();
    let no_meta = BTreeMap::new();

    // The rename fails (the target is a non-empty directory): Io naming the target, temp
    // file removed.
    let target = dir.join("sub");
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("keep"), b"x").unwrap();
    match checkpoint::save(&target, &[("x".to_string(), x.clone())], &no_meta) {
        Err(Error::Io { path, .. }) => assert_eq!(path, target),
        other => panic!("expected Io, got {other:?}"),
    }
    assert_eq!(dir.listing(), ["sub"]);

    // Bad names are refused before any file is created.
    let path = dir.join("m.safetensors");
    for names in [vec!["x", "x"], vec!["__metadata__"], vec![""]] {
        let ts: Vec<(String, Tensor)> = names.iter().map(|n| (n.to_string(), x.clone())).collect();
        assert!(
            matches!(
                checkpoint::save(&path, &ts, &no_meta),
                Err(Error::InvalidArgument { .. })
            ),
            "{names:?}"
        );
        assert_eq!(dir.listing(), ["sub"]);
    }

    // A directory that does not exist: Io naming a file inside it.
    let missing = dir.join("nope").join("m.safetensors");
    match checkpoint::save(&missing, &[("x".to_string(), x)], &no_meta) {
        Err(Error::Io { path, .. }) => assert!(path.starts_with(dir.join("nope")), "{path:?}"),
        other => panic!("expected Io, got {other:?}"),
    }
    assert_eq!(dir.listing(), ["sub"]);
}

/// The net of `scripts/torch_state_dict.py`, built under PyTorch's attribute names.
struct TorchNet {
    conv: cinder_nn::Conv2d,
    bn: cinder_nn::BatchNorm,
    gn: cinder_nn::GroupNorm,
    fc: cinder_nn::Linear,
    bn1: cinder_nn::BatchNorm,
    ln: cinder_nn::LayerNorm,
    rms: cinder_nn::RmsNorm,
}

impl TorchNet {
    fn new(vs: &VarStore) -> TorchNet {
        use cinder_nn::*;
        let bn1 = BatchNormConfig {
            momentum: None,
            ..Default::default()
        };
        TorchNet {
            conv: Conv2d::new(&vs.pp("conv"), 2, 3, 3, Default::default()).unwrap(),
            bn: BatchNorm::new_2d(&vs.pp("bn"), 3, Default::default()).unwrap(),
            gn: GroupNorm::new(&vs.pp("gn"), 3, 3, Default::default()).unwrap(),
            fc: Linear::new(&vs.pp("fc"), 12, 4, true).unwrap(),
            bn1: BatchNorm::new_1d(&vs.pp("bn1"), 4, bn1).unwrap(),
            ln: LayerNorm::new(&vs.pp("ln"), &[4], Default::default()).unwrap(),
            rms: RmsNorm::new(&vs.pp("rms"), &[4], Default::default()).unwrap(),
        }
    }

    fn forward(&self, x: &cinder_autograd::Tensor, train: bool) -> cinder_autograd::Tensor {
        use cinder_nn::{Module, ModuleT};
        let h = self.conv.forward(x).unwrap();
        let h = self.bn.forward_t(&h, train).unwrap().relu().unwrap();
        let h = self.gn.forward(&h).unwrap();
        let h = h.reshape(&[h.shape()[0], 12]).unwrap();
        let h = self
            .bn1
            .forward_t(&self.fc.forward(&h).unwrap(), train)
            .unwrap();
        self.rms.forward(&self.ln.forward(&h).unwrap()).unwrap()
    }
}

fn assert_near(got: &Tensor, want: &Tensor, what: &str) {
    assert_eq!(got.shape(), want.shape(), "{what}");
    let (g, w) = (got.to_vec::<f32>().unwrap(), want.to_vec::<f32>().unwrap());
    for (i, (a, b)) in g.iter().zip(&w).enumerate() {
        assert!(
            (a - b).abs() <= 2e-5 + 2e-4 * b.abs(),
            "{what}[{i}]: {a} vs PyTorch {b}"
        );
    }
}

/// A state_dict written by PyTorch (`safetensors.torch.save_file`, by
/// `scripts/torch_state_dict.py write`) with two BatchNorms (int64 `num_batches_tracked`
/// = 3), GroupNorm, LayerNorm and RMSNorm loads strictly; eval- and train-mode outputs and
/// the buffers after the training forward are PyTorch's; Cinder's own save holds the
/// counters as I64 scalars, as PyTorch's. With `CINDER_TORCH_EXPORT=DIR` the saved state
/// and the eval output are also written to DIR for `scripts/torch_state_dict.py check DIR`
/// (PyTorch's strict `load_state_dict`; see docs/checkpoints.md).
#[test]
fn torch_norms_state_dict_round_trip() {
    let dev = dev();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let vs = VarStore::new(&dev, 0);
    let net = TorchNet::new(&vs);
    vs.load(fixtures.join("torch_norms.safetensors")).unwrap();
    let count = |name: &str| vs.get(name).unwrap().to_vec::<u32>().unwrap();
    assert_eq!(count("bn.num_batches_tracked"), [3]);
    assert_eq!(count("bn1.num_batches_tracked"), [3]);

    let io: BTreeMap<String, Tensor> =
        checkpoint::load(fixtures.join("torch_norms_io.safetensors"), &dev)
            .unwrap()
            .into_iter()
            .collect();
    let x = |k: &str| io[k].clone();
    let y_eval = net.forward(&x("x_eval"), false);
    assert_near(&y_eval, &io["y_eval"], "eval output");
    let y_train = net.forward(&x("x_train"), true);
    assert_near(&y_train, &io["y_train"], "train output");
    for (k, want) in &io {
        let Some(name) = k.strip_prefix("after.") else {
            continue;
        };
        let got = vs.get(name).unwrap();
        match want.dtype() {
            DType::U32 => assert_eq!(bits(&got), bits(want), "{name}"),
            DType::F32 => assert_near(&got, want, name),
        }
    }
    assert_eq!(count("bn.num_batches_tracked"), [4]);

    // Cinder's file: the counters as I64 scalars, the rest F32; it loads back strictly.
    let dir = TempDir::new("torch-norms");
    let path = dir.join("cinder.safetensors");
    vs.save(&path).unwrap();
    let ck = checkpoint::read(&path).unwrap();
    for t in &ck.tensors {
        if t.name.ends_with("num_batches_tracked") {
            assert_eq!(t.file_dtype, FileDType::I64, "{}", t.name);
            assert!(t.shape.is_empty());
            assert_eq!(t.data, HostData::U32(vec![4]));
        } else {
            assert_eq!(t.file_dtype, FileDType::F32, "{}", t.name);
        }
    }
    assert_eq!(
        vs.file_dtype("bn1.num_batches_tracked"),
        Some(FileDType::I64)
    );
    assert_eq!(vs.file_dtype("bn1.running_var"), Some(FileDType::F32));
    let vs2 = VarStore::new(&dev, 1);
    let net2 = TorchNet::new(&vs2);
    vs2.load(&path).unwrap();
    assert_eq!(snapshot(&vs2), snapshot(&vs));
    assert_eq!(
        bits(&net2.forward(&x("x_eval"), false)),
        bits(&net.forward(&x("x_eval"), false))
    );

    if let Some(out) = std::env::var_os("CINDER_TORCH_EXPORT") {
        let out = PathBuf::from(out);
        std::fs::create_dir_all(&out).unwrap();
        vs.save(out.join("cinder_norms.safetensors")).unwrap();
        let io_out = vec![
            ("x_eval".to_string(), io["x_eval"].clone()),
            ("y_eval".to_string(), net.forward(&x("x_eval"), false)),
        ];
        checkpoint::save(
            out.join("cinder_norms_io.safetensors"),
            &io_out,
            &BTreeMap::new(),
        )
        .unwrap();
    }
}

/// `save_as` writes U32 as I64 where asked, refuses other conversions and unknown names
/// before creating any file; `Path::buffer_as` checks the conversion too.
#[test]
fn save_as_writes_u32_as_i64() {
    let dev = dev();
    let dir = TempDir::new("save-as");
    let path = dir.join("c.safetensors");
    let tensors = vec![
        (
            "n".to_string(),
            Tensor::from_slice(&dev, &[0u32, 7, u32::MAX], &[3]).unwrap(),
        ),
        (
            "x".to_string(),
            Tensor::from_slice(&dev, &[1.5f32], &[]).unwrap(),
        ),
    ];
    let mut as_i64 = BTreeMap::new();
    as_i64.insert("n".to_string(), FileDType::I64);
    checkpoint::save_as(&path, &tensors, &as_i64, &BTreeMap::new()).unwrap();
    let header = r#"{"n":{"dtype":"I64","shape":[3],"data_offsets":[0,24]},"x":{"dtype":"F32","shape":[],"data_offsets":[24,28]}}"#;
    let mut data: Vec<u8> = [0i64, 7, u32::MAX as i64]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    data.extend(f32_bytes(&[1.5]));
    assert_eq!(std::fs::read(&path).unwrap(), file_bytes(header, &data));
    let back = checkpoint::read(&path).unwrap();
    assert_eq!(back.tensors[0].data, HostData::U32(vec![0, 7, u32::MAX]));

    for (name, fd) in [
        ("x", FileDType::I64),
        ("n", FileDType::F32),
        ("nope", FileDType::I64),
    ] {
        let mut m = BTreeMap::new();
        m.insert(name.to_string(), fd);
        let p = dir.join("bad.safetensors");
        assert!(matches!(
            checkpoint::save_as(&p, &tensors, &m, &BTreeMap::new()),
            Err(Error::InvalidArgument { .. })
        ));
        assert!(!p.exists());
    }
    assert_eq!(dir.listing(), ["c.safetensors"]);

    let vs = VarStore::new(&dev, 0);
    let f = Tensor::zeros(&dev, &[]).unwrap();
    assert!(vs.root().buffer_as("f", f.clone(), FileDType::I64).is_err());
    vs.root().buffer_as("g", f, FileDType::F32).unwrap();
    assert_eq!(
        vs.file_dtypes(),
        BTreeMap::new(),
        "its own dtype is not recorded"
    );
}

#[test]
fn non_finite_values_are_refused_unless_asked_for() {
    let dev = dev();
    let dir = TempDir::new("nonfinite");
    let path = dir.join("model.safetensors");
    let vs = small_store(&dev);
    vs.save(&path).unwrap();
    let good = std::fs::read(&path).unwrap();

    // `b` (the second parameter) gets an infinity at element 1 and a NaN at element 2
    let b = vs.get("b").unwrap();
    b.set_data(&Tensor::from_slice(&dev, &[0.5f32, f32::INFINITY, f32::NAN], &[3]).unwrap())
        .unwrap();
    match vs.save(&path) {
        Err(Error::InvalidArgument { op, msg, shape }) => {
            assert_eq!(op, "checkpoint::save");
            assert_eq!(shape, vec![3]);
            assert!(
                msg.starts_with(
                    "tensor `b` holds 2 NaN or infinite value(s) of 3 (the first, element 1, is inf)"
                ),
                "{msg}"
            );
            assert!(msg.contains(&path.display().to_string()), "{msg}");
            assert!(msg.contains("set_detect_anomaly") && msg.contains("allow_non_finite"));
        }
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
    assert_eq!(
        std::fs::read(&path).unwrap(),
        good,
        "the last good file is kept"
    );
    assert_eq!(dir.listing(), ["model.safetensors"], "no temp file");
    // metadata does not change that
    let meta = BTreeMap::from([("epoch".to_string(), "3".to_string())]);
    assert!(vs.save_with_metadata(&path, &meta).is_err());

    // with a NaN in `a` too, the first bad variable in store order is named: `a`
    let a = vs.get("a").unwrap();
    a.set_data(&Tensor::from_slice(&dev, &[f32::NAN, 0.0, 0.0, 0.0], &[2, 2]).unwrap())
        .unwrap();
    let e = vs.save(&path).unwrap_err().to_string();
    assert!(e.contains("tensor `a` holds 1 NaN"), "{e}");

    // named tensors: the first bad one in the order given, not in file order
    let t = |v: &[f32]| Tensor::from_slice(&dev, v, &[v.len()]).unwrap();
    let named = vec![
        ("z.ok".to_string(), t(&[1.0])),
        ("y.neg_inf".to_string(), t(&[0.0, f32::NEG_INFINITY])),
        ("a.nan".to_string(), t(&[f32::NAN])),
    ];
    let other = dir.join("named.safetensors");
    let e = checkpoint::save(&other, &named, &BTreeMap::new())
        .unwrap_err()
        .to_string();
    assert!(e.contains("tensor `y.neg_inf` holds 1 NaN or infinite value(s) of 2 (the first, element 1, is -inf)"), "{e}");
    assert!(checkpoint::prepare_save(&other, &named, &BTreeMap::new()).is_err());
    assert!(!other.exists());

    // asked for: written bit for bit, with the store's file dtypes
    vs.save_with_options(&path, &meta, &checkpoint::SaveOptions::allow_non_finite())
        .unwrap();
    let back = small_store_seeded(&dev, 8);
    back.load(&path).unwrap();
    assert_eq!(snapshot(&back), snapshot(&vs));
    assert!(back.get("b").unwrap().to_vec::<f32>().unwrap()[2].is_nan());
    checkpoint::save_with(
        &other,
        &named,
        &BTreeMap::new(),
        &checkpoint::SaveOptions::allow_non_finite(),
    )
    .unwrap();
    assert_eq!(checkpoint::read(&other).unwrap().tensors.len(), 3);

    // u32 tensors are never refused; a finite store saves as before
    let fine = small_store(&dev);
    fine.save(&path).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), good);
}

#[test]
fn stale_temp_files_of_dead_writers_are_removed_at_the_next_save() {
    let dev = dev();
    let dir = TempDir::new("stale");
    let path = dir.join("last.safetensors");
    // A process that has exited (and been waited for): its id names no process now.
    let mut dead = std::process::Command::new("true").spawn().unwrap();
    let dead_pid = dead.id();
    dead.wait().unwrap();
    // A process that has exited but has not been waited for yet: a zombie, which writes
    // nothing more.
    let mut zombie = std::process::Command::new("true").spawn().unwrap();
    let zombie_pid = zombie.id();
    let state = || std::fs::read_to_string(format!("/proc/{zombie_pid}/stat")).unwrap();
    for _ in 0..500 {
        if state().contains(") Z") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(state().contains(") Z"), "{}", state());
    // A live process, as a writer still writing.
    let mut live = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .unwrap();
    let live_pid = live.id();
    let own = std::process::id();
    let files = [
        format!(".last.safetensors.tmp-{dead_pid}-0"),
        format!(".last.safetensors.tmp-{zombie_pid}-17"),
        format!(".last.safetensors.tmp-{live_pid}-3"),
        format!(".last.safetensors.tmp-{own}-99"),
        format!(".best.safetensors.tmp-{dead_pid}-0"), // another target
        format!(".last.safetensors.tmp-{dead_pid}-x"), // not a temp name
        format!(".last.safetensors.tmp-{dead_pid}"),
        format!("last.safetensors.tmp-{dead_pid}-0"),
    ];
    for f in &files {
        std::fs::write(dir.join(f), b"partial").unwrap();
    }
    let vs = small_store(&dev);
    vs.save(&path).unwrap();
    let mut left = dir.listing();
    left.retain(|f| f != "last.safetensors");
    let mut want: Vec<String> = files[2..].to_vec();
    want.sort();
    assert_eq!(
        left, want,
        "only the dead writers' files of this target are gone"
    );
    zombie.wait().unwrap();
    // the live writer's file goes once it is dead
    live.kill().unwrap();
    live.wait().unwrap();
    let removed = checkpoint::remove_stale_temp_files(&path).unwrap();
    assert_eq!(removed, vec![dir.join(&files[2])]);
    assert!(
        checkpoint::remove_stale_temp_files(&path)
            .unwrap()
            .is_empty()
    );
    assert!(dir.join(&files[3]).exists(), "this process's file is kept");
    // a missing directory is an Io error naming it
    let gone = dir.join("no-such-dir").join("m.safetensors");
    match checkpoint::remove_stale_temp_files(&gone) {
        Err(Error::Io { path, .. }) => assert_eq!(path, dir.join("no-such-dir")),
        other => panic!("{other:?}"),
    }
}

/// A file holding F16 `h` [1], then F32 `w` [3] at data offset 2 (so `w`'s bytes are not
/// 4-byte aligned in the mapping), and an aligned U32 `n` [2].
fn misaligned_file(path: &Path) -> (Vec<u32>, Vec<u32>) {
    let w_bits = vec![0x3f80_0000u32, 0x8000_0001, 0x7fc0_0001];
    let n = vec![7u32, u32::MAX];
    let mut data = 0x3c00u16.to_le_bytes().to_vec();
    data.extend(w_bits.iter().flat_map(|b| b.to_le_bytes()));
    data.extend([0u8; 2]); // a U8 pad would be refused; `p` is F16 [1]
    data.extend(n.iter().flat_map(|v| v.to_le_bytes()));
    let header = r#"{"h":{"dtype":"F16","shape":[1],"data_offsets":[0,2]},"w":{"dtype":"F32","shape":[3],"data_offsets":[2,14]},"p":{"dtype":"F16","shape":[1],"data_offsets":[14,16]},"n":{"dtype":"U32","shape":[2],"data_offsets":[16,24]}}"#;
    std::fs::write(path, file_bytes(header, &data)).unwrap();
    (w_bits, n)
}

/// `CheckpointFile` opens without reading data, lists the header's tensors by name, and
/// converts one tensor at a time, through the zero-copy path (aligned F32/U32) and the
/// converting one (unaligned F32, F16) alike, with the same bits.
#[test]
fn checkpoint_file_loads_tensors_one_at_a_time() {
    let dev = dev();
    let dir = TempDir::new("mapped");
    let path = dir.join("m.safetensors");
    let (w_bits, n) = misaligned_file(&path);
    let file = CheckpointFile::open(&path).unwrap();
    assert_eq!(file.path(), path.as_path());
    assert!(file.metadata().is_empty());
    let names: Vec<&str> = file.tensors().iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["h", "n", "p", "w"]);
    let w = file.get("w").unwrap();
    assert_eq!(
        (w.shape.as_slice(), w.file_dtype, w.dtype()),
        (&[3usize][..], FileDType::F32, DType::F32)
    );
    let header_len = u64::from_le_bytes(std::fs::read(&path).unwrap()[..8].try_into().unwrap());
    assert_eq!(w.byte_range(), 8 + header_len + 2..8 + header_len + 14);
    assert_eq!(w.numel(), 3);
    assert!(file.get("nope").is_none());
    assert!(
        (8 + header_len + 2) % 4 != 0,
        "`w` is not 4-byte aligned in the file"
    );

    // Device: unaligned F32 (converted), aligned U32 (straight from the mapping), F16.
    assert_eq!(bits(&file.load_tensor("w", &dev).unwrap()), w_bits);
    assert_eq!(
        file.load_tensor("n", &dev)
            .unwrap()
            .to_vec::<u32>()
            .unwrap(),
        n
    );
    assert_eq!(
        bits(&file.load_tensor("h", &dev).unwrap()),
        [1f32.to_bits()]
    );
    // Host, the same bits; and again (the released pages are read back from the file).
    for _ in 0..2 {
        let t = file.read_tensor("w").unwrap();
        assert_eq!(t.file_dtype, FileDType::F32);
        match t.data {
            HostData::F32(v) => {
                assert_eq!(v.iter().map(|x| x.to_bits()).collect::<Vec<_>>(), w_bits)
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        file.read_tensor("n").unwrap().data,
        HostData::U32(n.clone())
    );
    // An unknown name is an InvalidArgument naming the file and the tensor.
    for r in [
        file.read_tensor("nope").map(|_| ()),
        file.load_tensor("nope", &dev).map(|_| ()),
    ] {
        match r {
            Err(Error::InvalidArgument { msg, .. }) => {
                assert!(
                    msg.contains("no tensor `nope`") && msg.contains(&path.display().to_string()),
                    "{msg}"
                )
            }
            other => panic!("{other:?}"),
        }
    }
    // The same through `load` and a VarStore.
    let loaded: BTreeMap<String, Tensor> =
        checkpoint::load(&path, &dev).unwrap().into_iter().collect();
    assert_eq!(bits(&loaded["w"]), w_bits);
    let vs = VarStore::new(&dev, 0);
    vs.root().var("w", &[3], Init::Constant(0.0)).unwrap();
    vs.root()
        .buffer("n", Tensor::from_slice(&dev, &[0u32, 0], &[2]).unwrap())
        .unwrap();
    let report = vs.load_partial(&path).unwrap();
    assert_eq!(report.loaded, ["w", "n"]);
    assert_eq!(report.unexpected, ["h", "p"]);
    assert_eq!(bits(&vs.get("w").unwrap()), w_bits);
}

/// A file far larger than this machine's memory (a 32 GiB tensor, in a sparse file that
/// takes no disk) opens and loads by name: only the header and the tensors asked for are
/// read, never the whole file (reading it into memory would fail here).
#[test]
fn a_file_larger_than_memory_loads_by_name() {
    let dev = dev();
    let dir = TempDir::new("sparse");
    let path = dir.join("huge.safetensors");
    let huge_bytes: u64 = 8 << 32; // [8, 2^30] f32: 32 GiB
    let small = [1.5f32, -2.0, 0.25, 8.0];
    let header = format!(
        r#"{{"__metadata__":{{"what":"sparse"}},"small.weight":{{"dtype":"F32","shape":[4],"data_offsets":[0,16]}},"huge":{{"dtype":"F32","shape":[8,1073741824],"data_offsets":[16,{}]}}}}"#,
        16 + huge_bytes
    );
    let head = file_bytes(&header, &f32_bytes(&small));
    {
        let f = std::fs::File::create(&path).unwrap();
        std::io::Write::write_all(&mut &f, &head).unwrap();
        f.set_len(head.len() as u64 + huge_bytes).unwrap();
    }
    let len = std::fs::metadata(&path).unwrap().len();
    assert!(len > 32 << 30);

    let file = CheckpointFile::open(&path).unwrap();
    assert_eq!(file.metadata()["what"], "sparse");
    let huge = file.get("huge").unwrap();
    assert_eq!(huge.shape, [8, 1 << 30]);
    assert_eq!(huge.byte_range().end, len);
    assert_eq!(
        file.load_tensor("small.weight", &dev)
            .unwrap()
            .to_vec::<f32>()
            .unwrap(),
        small
    );
    // The 2^33-element tensor cannot go to the device: an error, before reading it.
    assert!(file.load_tensor("huge", &dev).is_err());
    drop(file);

    // A store that holds only `small.weight` loads it from the file; `huge` is reported
    // and never read. A strict load refuses the file and changes nothing.
    let vs = VarStore::new(&dev, 0);
    vs.root()
        .pp("small")
        .var("weight", &[4], Init::Constant(0.0))
        .unwrap();
    let before = snapshot(&vs);
    match vs.load(&path) {
        Err(Error::InvalidArgument { msg, .. }) => {
            assert!(msg.contains("unexpected tensor `huge`"), "{msg}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(snapshot(&vs), before);
    let report = vs.load_partial(&path).unwrap();
    assert_eq!(report.loaded, ["small.weight"]);
    assert_eq!(report.unexpected, ["huge"]);
    assert_eq!(
        vs.get("small.weight").unwrap().to_vec::<f32>().unwrap(),
        small
    );
}

/// A file holding every dtype the reader converts, written byte by byte.
fn every_dtype_file(path: &Path) {
    let mut data = Vec::new();
    let mut header = String::from(r#"{"__metadata__":{"format":"pt","epoch":"4"}"#);
    let mut add = |name: &str, dtype: &str, shape: &str, bytes: Vec<u8>| {
        header.push_str(&format!(
            r#","{name}":{{"dtype":"{dtype}","shape":{shape},"data_offsets":[{},{}]}}"#,
            data.len(),
            data.len() + bytes.len()
        ));
        data.extend(bytes);
    };
    add(
        "d",
        "F64",
        "[3]",
        [0.5f64, -1e-3, 7.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
    );
    add("l", "I64", "[]", 5i64.to_le_bytes().to_vec());
    add(
        "w",
        "F32",
        "[2,3]",
        f32_bytes(&[1.0, -2.0, 0.5, 3.0, -0.0, 1e-3]),
    );
    add(
        "i",
        "I32",
        "[2]",
        [3i32, 9].iter().flat_map(|v| v.to_le_bytes()).collect(),
    );
    add(
        "u",
        "U32",
        "[2]",
        [1u32, 2].iter().flat_map(|v| v.to_le_bytes()).collect(),
    );
    add(
        "h",
        "F16",
        "[3]",
        [0x3c00u16, 0xc000, 0x0001]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
    );
    add("b", "BF16", "[1]", 0x3f80u16.to_le_bytes().to_vec());
    header.push('}');
    std::fs::write(path, file_bytes(&header, &data)).unwrap();
}

/// Shape, file dtype and data of every tensor, in name order (names left out: a corrupted
/// name character may rename a tensor).
fn structure(ck: &checkpoint::Checkpoint) -> Vec<(Vec<usize>, FileDType, usize)> {
    ck.tensors
        .iter()
        .map(|t| {
            let n = match &t.data {
                HostData::F32(v) => v.len(),
                HostData::U32(v) => v.len(),
            };
            (t.shape.clone(), t.file_dtype, n)
        })
        .collect()
}

/// Truncations and corruptions at random offsets (seeded; 400 cases over two files, one
/// Cinder's with an I64 counter and metadata, one with every dtype the reader converts):
/// `read`, `load` and `CheckpointFile::open` never panic, and agree. A file cut short,
/// with bytes appended, or with its header length changed is always an `Error::Format`
/// naming the file (and a strict load of it leaves the store unchanged). A changed header
/// byte is an `Error::Format` or gives the same shapes, dtypes and data. A changed data
/// byte (the format has no checksum) changes only the values of the tensor it lies in,
/// or is an `Error::Format` naming that tensor's element when the value no longer
/// converts (an I64 beyond u32, a negative I32, an F64 beyond f32).
#[test]
fn random_truncations_and_corruptions_are_errors_or_harmless() {
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};
    let dev = dev();
    let dir = TempDir::new("random");
    let ours = dir.join("ours.safetensors");
    let vs = small_store(&dev);
    vs.root()
        .buffer_as(
            "count",
            Tensor::from_slice(&dev, &[3u32], &[]).unwrap(),
            FileDType::I64,
        )
        .unwrap();
    let meta = BTreeMap::from([("epoch".to_string(), "2".to_string())]);
    vs.save_with_metadata(&ours, &meta).unwrap();
    let mixed = dir.join("mixed.safetensors");
    every_dtype_file(&mixed);

    let bad = dir.join("bad.safetensors");
    let mut rng = StdRng::seed_from_u64(0x5afe_7e45);
    let mut counts = BTreeMap::<&str, (usize, usize)>::new(); // kind -> (errs, oks)
    for (base, cases) in [(&ours, 200), (&mixed, 200)] {
        let full = std::fs::read(base).unwrap();
        let original = checkpoint::read(base).unwrap();
        let header_end = 8 + u64::from_le_bytes(full[..8].try_into().unwrap()) as usize;
        for case in 0..cases {
            let mut b = full.clone();
            let mut hit = Vec::new();
            let kind = match rng.random_range(0..5) {
                0 => {
                    b.truncate(rng.random_range(0..full.len()));
                    "truncated"
                }
                1 => {
                    let extra = rng.random_range(1..64);
                    b.extend((0..extra).map(|_| rng.random::<u8>()));
                    "appended"
                }
                k => {
                    let (kind, range) = match k {
                        2 => ("length", 0..8),
                        3 => ("header", 8..header_end),
                        _ => ("data", header_end..full.len()),
                    };
                    for _ in 0..rng.random_range(1..4) {
                        let pos = rng.random_range(range.clone());
                        b[pos] = loop {
                            let v = rng.random::<u8>();
                            if v != full[pos] {
                                break v;
                            }
                        };
                        hit.push(pos);
                    }
                    kind
                }
            };
            std::fs::write(&bad, &b).unwrap();
            let what = format!("{} case {case} ({kind}, bytes {hit:?})", base.display());
            let read = std::panic::catch_unwind(|| checkpoint::read(&bad))
                .unwrap_or_else(|_| panic!("{what}: read panicked"));
            let load = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                checkpoint::load(&bad, &dev)
            }))
            .unwrap_or_else(|_| panic!("{what}: load panicked"));
            let opened = CheckpointFile::open(&bad);
            assert_eq!(read.is_ok(), load.is_ok(), "{what}: read and load agree");
            let entry = counts.entry(kind).or_default();
            match read {
                Err(Error::Format { path, at, .. }) => {
                    assert_eq!(path, bad, "{what}");
                    entry.0 += 1;
                    if kind == "data" {
                        // Only a value that no longer converts: the header is intact.
                        assert!(opened.is_ok(), "{what}: {at}");
                        assert!(
                            at.starts_with("tensor `") && at.contains("` element "),
                            "{what}: {at}"
                        );
                        assert!(
                            matches!(load, Err(Error::Format { at: ref a, .. }) if *a == at),
                            "{what}"
                        );
                    }
                }
                Err(e) => panic!("{what}: unexpected error kind {e:?}"),
                Ok(ck) => {
                    assert!(
                        matches!(kind, "header" | "data"),
                        "{what}: a {kind} file was accepted"
                    );
                    assert!(opened.is_ok(), "{what}");
                    assert_eq!(structure(&ck), structure(&original), "{what}");
                    if kind == "header" {
                        let data = |c: &checkpoint::Checkpoint| {
                            c.tensors.iter().map(|t| t.data.clone()).collect::<Vec<_>>()
                        };
                        assert_eq!(
                            format!("{:?}", data(&ck)),
                            format!("{:?}", data(&original)),
                            "{what}"
                        );
                    } else {
                        assert_eq!(ck.metadata, original.metadata, "{what}");
                        // Only tensors whose bytes hold a changed byte differ.
                        let file = CheckpointFile::open(&bad).unwrap();
                        for (t, o) in ck.tensors.iter().zip(&original.tensors) {
                            let r = file.get(&t.name).unwrap().byte_range();
                            let touched = hit.iter().any(|&p| r.contains(&(p as u64)));
                            if !touched {
                                assert_eq!(
                                    format!("{:?}", t.data),
                                    format!("{:?}", o.data),
                                    "{what}: {}",
                                    t.name
                                );
                            }
                        }
                    }
                    entry.1 += 1;
                }
            }
            if matches!(kind, "truncated" | "appended" | "length") && base == &ours {
                let before = snapshot(&vs);
                assert!(matches!(vs.load(&bad), Err(Error::Format { .. })), "{what}");
                assert_eq!(snapshot(&vs), before, "{what}");
            }
        }
    }
    // Every kind was drawn; the header corruptions are mostly caught.
    assert_eq!(counts.values().map(|(e, o)| e + o).sum::<usize>(), 400);
    assert_eq!(counts.len(), 5, "{counts:?}");
    let (e, o) = counts["header"];
    assert!(e > 2 * o, "{counts:?}");
}
