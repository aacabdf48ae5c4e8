//! The GPU context: adapter choice, pipeline cache, batched asynchronous dispatch, upload and
//! readback, and the buffer pool.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::checks::{ERROR_WORD_BYTES, WORDS_PER_SLOT, error_slot};
use crate::error::{Error, Result};
use crate::kernel::{Kernel, MAX_PARAMS_BYTES, Params};
use crate::pool::{Pool, size_class};
use crate::profile::{self, Clock};
use crate::tensor::DeviceTensor;

/// Dispatches recorded before the pending commands are submitted without being asked.
const MAX_PENDING_DISPATCHES: u32 = 512;
/// Submissions allowed in flight before recording waits for the oldest (back-pressure).
const MAX_IN_FLIGHT: usize = 4;
/// Uploads allowed without a submit (many `write_buffer` calls without one corrupt uploads).
const MAX_UPLOADS_PER_SUBMIT: u32 = 64;
/// How long a readback waits for its buffer to be mapped before giving up with
/// [`Error::DeviceLost`] (a healthy device maps within milliseconds of the copy finishing).
const READBACK_TIMEOUT: Duration = Duration::from_secs(300);
/// Default bound on the bytes the pool keeps for reuse.
const DEFAULT_MAX_POOLED_BYTES: u64 = 2 << 30;

/// A handle to one GPU (or lavapipe) device and its queue. Cheap to clone; every tensor holds
/// one. [`Device::default`] returns the process-wide shared device.
#[derive(Clone)]
pub struct Device {
    inner: Arc<Inner>,
}

struct Inner {
    device: wgpu::Device,
    queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    limits: wgpu::Limits,
    immediate_size: u32,
    unchecked_shaders: bool,
    pipelines: Mutex<HashMap<Kernel, Arc<Pipeline>>>,
    state: Mutex<State>,
    pool: Mutex<Pool>,
    /// Most bytes the pool and live tensors may hold together (`None`: no budget).
    memory_budget: Option<u64>,
    gpu_error: Arc<Mutex<Option<String>>>,
    /// The error word of kernels that check what they read ([`Kernel::error_word`]), one
    /// slot per host thread; a thread's readbacks and syncs read its slot and clear it (see
    /// [`crate::checks`]).
    error_word: wgpu::Buffer,
    /// Set when `CINDER_PROFILE=1` (see [`crate::profile`]).
    profiler: Option<Profiler>,
}

/// What a profiling device needs: timestamp queries where the adapter has them.
struct Profiler {
    /// `None`: no timestamp queries, so each dispatch is submitted and waited for alone.
    queries: Option<TimestampQueries>,
}

struct TimestampQueries {
    set: wgpu::QuerySet,
    /// Where the query set is resolved before being copied to a mappable buffer.
    resolve: wgpu::Buffer,
    /// Nanoseconds per timestamp tick.
    period_ns: f64,
}

/// Timestamp pairs one query set holds: the pending commands are submitted when it is full.
const PROFILED_PER_SUBMIT: u32 = 256;

struct Pipeline {
    pipeline: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
    /// The word types of the immediate struct the entry point reads (naga's reflection),
    /// which every dispatch's [`Params`] must match.
    immediates: Vec<crate::kernel::Word>,
}

struct State {
    encoder: Option<wgpu::CommandEncoder>,
    pass: Option<wgpu::ComputePass<'static>>,
    pending: u32,
    uploads: u32,
    in_flight: VecDeque<wgpu::SubmissionIndex>,
    dispatches: u64,
    submits: u64,
    /// Number of the command buffer being recorded (the next to be submitted), from 1.
    seq: u64,
    /// Command buffers the device rejected at submit, with its message: tensors they wrote
    /// read back as `Err`, and ops reading them fail.
    failed: HashMap<u64, String>,
    /// Labels of the profiled dispatches recorded into the current encoder, in query order.
    profiled: Vec<String>,
}

/// Memory held by a device's tensors and its pool, in bytes (size-class rounded).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryStats {
    /// Bytes in buffers owned by live tensors.
    pub live_bytes: u64,
    /// Bytes in free buffers kept for reuse.
    pub pooled_bytes: u64,
}

/// Counters of recorded work, for tests and benches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DispatchStats {
    /// Kernel dispatches recorded since the device was created.
    pub dispatches: u64,
    /// Queue submissions since the device was created.
    pub submits: u64,
}

static DEFAULT: OnceLock<std::result::Result<Device, (bool, String)>> = OnceLock::new();

/// How to choose an adapter. [`DeviceOptions::from_env`] reads `CINDER_ADAPTER`,
/// `CINDER_BACKEND` and `CINDER_UNCHECKED_SHADERS`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeviceOptions {
    /// Case-insensitive substring the adapter's name must contain.
    pub adapter: Option<String>,
    /// Backend to restrict to: `vulkan`, `gl`, `metal` or `dx12`.
    pub backend: Option<String>,
    /// Compile kernels without naga's runtime bounds checks.
    pub unchecked_shaders: bool,
    /// Most bytes of buffers the device may hold (live tensors and the pool together);
    /// past it, allocations return [`Error::OutOfMemory`] before the driver is asked.
    /// `None`: [`default_memory_budget`] for CPU adapters, no budget for GPUs (whose
    /// drivers report exhaustion as an error themselves).
    pub memory_limit: Option<u64>,
}

impl DeviceOptions {
    /// Options from the environment: `CINDER_ADAPTER`, `CINDER_BACKEND`,
    /// `CINDER_UNCHECKED_SHADERS=1`, `CINDER_MEMORY_LIMIT` (bytes, or with a `K`, `M` or `G`
    /// suffix of powers of 1024; an unreadable value is ignored).
    pub fn from_env() -> Self {
        DeviceOptions {
            adapter: std::env::var("CINDER_ADAPTER")
                .ok()
                .filter(|s| !s.is_empty()),
            backend: std::env::var("CINDER_BACKEND")
                .ok()
                .filter(|s| !s.is_empty()),
            unchecked_shaders: std::env::var("CINDER_UNCHECKED_SHADERS").is_ok_and(|v| v == "1"),
            memory_limit: std::env::var("CINDER_MEMORY_LIMIT")
                .ok()
                .and_then(|v| parse_bytes(&v)),
        }
    }

    fn backends(&self) -> Result<wgpu::Backends> {
        match &self.backend {
            None => Ok(wgpu::Backends::all() - wgpu::Backends::BROWSER_WEBGPU),
            Some(v) => match v.to_ascii_lowercase().as_str() {
                "vulkan" => Ok(wgpu::Backends::VULKAN),
                "gl" | "gles" | "opengl" => Ok(wgpu::Backends::GL),
                "metal" => Ok(wgpu::Backends::METAL),
                "dx12" => Ok(wgpu::Backends::DX12),
                other => Err(Error::NoAdapter {
                    reason: format!("backend {other} is not one of vulkan, gl, metal, dx12"),
                }),
            },
        }
    }
}

/// `"123"`, `"64K"`, `"512M"`, `"2G"` (powers of 1024) as bytes; `None` otherwise.
pub fn parse_bytes(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last()? {
        (i, 'k' | 'K') => (&s[..i], 1u64 << 10),
        (i, 'm' | 'M') => (&s[..i], 1 << 20),
        (i, 'g' | 'G') => (&s[..i], 1 << 30),
        _ => (s, 1),
    };
    num.trim().parse::<u64>().ok()?.checked_mul(mult)
}

/// The memory budget of a CPU adapter (lavapipe), whose buffers live in host memory: three
/// quarters of the smaller of the memory the kernel reports available (`MemAvailable` in
/// `/proc/meminfo`) and half the process's address-space limit (`ulimit -v`), or `None`
/// where neither is known. Running past it would end in the driver failing an allocation
/// it cannot report (seen as a SIGSEGV inside lavapipe under `ulimit -v`).
pub fn default_memory_budget() -> Option<u64> {
    let available = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
        m.lines()
            .find_map(|l| l.strip_prefix("MemAvailable:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
    });
    let address_space = address_space_limit().map(|b| b / 2);
    let m = match (available, address_space) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => a.or(b)?,
    };
    Some(m / 4 * 3)
}

#[cfg(unix)]
#[allow(clippy::unnecessary_cast)] // rlim_t is u64 on Linux, not on every unix
fn address_space_limit() -> Option<u64> {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut r) } == 0;
    (ok && r.rlim_cur != libc::RLIM_INFINITY).then_some(r.rlim_cur as u64)
}

#[cfg(not(unix))]
fn address_space_limit() -> Option<u64> {
    None
}

fn type_rank(t: wgpu::DeviceType) -> u32 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    }
}

fn backend_rank(b: wgpu::Backend) -> u32 {
    match b {
        wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 0,
        _ => 1,
    }
}

impl Device {
    /// The process-wide shared device, created on first use: a discrete GPU if there is one,
    /// then an integrated one, then any adapter (lavapipe). `CINDER_ADAPTER=<substring>` picks an
    /// adapter by name and `CINDER_BACKEND=vulkan|gl|metal|dx12` restricts backends.
    /// `CINDER_UNCHECKED_SHADERS=1` compiles kernels without naga's runtime bounds checks.
    /// Returns [`Error::NoAdapter`] (with the install command) when no adapter qualifies.
    #[allow(clippy::should_implement_trait)]
    pub fn default() -> Result<Device> {
        let d = DEFAULT.get_or_init(|| {
            Device::new().map_err(|e| match e {
                Error::NoAdapter { reason } => (true, reason),
                other => (false, other.to_string()),
            })
        });
        match d {
            Ok(dev) => Ok(dev.clone()),
            Err((true, reason)) => Err(Error::NoAdapter {
                reason: reason.clone(),
            }),
            Err((false, msg)) => Err(Error::DeviceRequest {
                adapter: "default".into(),
                reason: msg.clone(),
            }),
        }
    }

    /// Creates a new device (not the shared one) with [`DeviceOptions::from_env`].
    /// Returns [`Error::NoAdapter`] when none qualifies and [`Error::DeviceRequest`] when the
    /// adapter refuses to create a device.
    pub fn new() -> Result<Device> {
        Self::with_options(&DeviceOptions::from_env())
    }

    /// Creates a new device chosen by `options`. Errors as [`Device::new`].
    pub fn with_options(options: &DeviceOptions) -> Result<Device> {
        let backends = options.backends()?;
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
        desc.backends = backends;
        let instance = wgpu::Instance::new(desc);
        let adapters = pollster::block_on(instance.enumerate_adapters(backends));
        let wanted = options.adapter.as_ref().map(|s| s.to_ascii_lowercase());
        let mut seen = Vec::new();
        let mut candidates = Vec::new();
        for a in adapters {
            let info = a.get_info();
            seen.push(format!(
                "{} ({:?}, {:?})",
                info.name, info.device_type, info.backend
            ));
            if let Some(w) = &wanted
                && !info.name.to_ascii_lowercase().contains(w)
            {
                continue;
            }
            if !a.features().contains(wgpu::Features::IMMEDIATES)
                || (a.limits().max_immediate_size as usize) < MAX_PARAMS_BYTES
            {
                continue;
            }
            candidates.push(a);
        }
        candidates.sort_by_key(|a| {
            let i = a.get_info();
            (type_rank(i.device_type), backend_rank(i.backend))
        });
        let Some(adapter) = candidates.into_iter().next() else {
            let filter = wanted
                .map(|w| format!("adapter name filter {w:?}; "))
                .unwrap_or_default();
            let seen = if seen.is_empty() {
                "none".to_string()
            } else {
                seen.join(", ")
            };
            return Err(Error::NoAdapter {
                reason: format!(
                    "{filter}adapters seen: {seen}; Cinder needs one with immediates of at least {MAX_PARAMS_BYTES} bytes"
                ),
            });
        };
        Self::from_adapter(adapter, options)
    }

    fn from_adapter(adapter: wgpu::Adapter, options: &DeviceOptions) -> Result<Device> {
        let unchecked_shaders = options.unchecked_shaders;
        let info = adapter.get_info();
        let memory_budget = options.memory_limit.or_else(|| {
            (info.device_type == wgpu::DeviceType::Cpu)
                .then(default_memory_budget)
                .flatten()
        });
        let limits = adapter.limits();
        let profiling = profile::enabled();
        let timestamps = profiling && adapter.features().contains(wgpu::Features::TIMESTAMP_QUERY);
        let mut features = wgpu::Features::IMMEDIATES;
        if timestamps {
            features |= wgpu::Features::TIMESTAMP_QUERY;
        }
        let desc = wgpu::DeviceDescriptor {
            label: Some("cinder"),
            required_features: features,
            required_limits: limits.clone(),
            ..Default::default()
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&desc)).map_err(|e| {
            Error::DeviceRequest {
                adapter: info.name.clone(),
                reason: e.to_string(),
            }
        })?;
        let gpu_error = Arc::new(Mutex::new(None::<String>));
        let sink = gpu_error.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            let mut g = sink.lock().unwrap_or_else(|p| p.into_inner());
            if g.is_none() {
                *g = Some(e.to_string());
            }
        }));
        let pool = Pool::with_limit(DEFAULT_MAX_POOLED_BYTES);
        // wgpu zero-initializes new buffers.
        let error_word = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("error word"),
            size: ERROR_WORD_BYTES,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let profiler = profiling.then(|| {
            profile::print_at_exit_once();
            Profiler {
                queries: timestamps.then(|| TimestampQueries {
                    set: device.create_query_set(&wgpu::QuerySetDescriptor {
                        label: Some("profile"),
                        ty: wgpu::QueryType::Timestamp,
                        count: 2 * PROFILED_PER_SUBMIT,
                    }),
                    resolve: device.create_buffer(&wgpu::BufferDescriptor {
                        label: Some("profile resolve"),
                        size: 16 * PROFILED_PER_SUBMIT as u64,
                        usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                        mapped_at_creation: false,
                    }),
                    period_ns: queue.get_timestamp_period() as f64,
                }),
            }
        });
        Ok(Device {
            inner: Arc::new(Inner {
                device,
                queue,
                immediate_size: MAX_PARAMS_BYTES as u32,
                unchecked_shaders,
                info,
                limits,
                pipelines: Mutex::new(HashMap::new()),
                state: Mutex::new(State {
                    encoder: None,
                    pass: None,
                    pending: 0,
                    uploads: 0,
                    in_flight: VecDeque::new(),
                    dispatches: 0,
                    submits: 0,
                    seq: 1,
                    failed: HashMap::new(),
                    profiled: Vec::new(),
                }),
                pool: Mutex::new(pool),
                memory_budget,
                gpu_error,
                error_word,
                profiler,
            }),
        })
    }

    /// The adapter's name, backend, type and driver.
    pub fn adapter_info(&self) -> &wgpu::AdapterInfo {
        &self.inner.info
    }

    /// The limits the device was created with (the adapter's own).
    pub fn limits(&self) -> &wgpu::Limits {
        &self.inner.limits
    }

    /// True when the adapter is a CPU implementation (lavapipe, SwiftShader, WARP).
    pub fn is_cpu(&self) -> bool {
        self.inner.info.device_type == wgpu::DeviceType::Cpu
    }

    /// The underlying wgpu device, for code that needs raw access.
    pub fn wgpu_device(&self) -> &wgpu::Device {
        &self.inner.device
    }

    /// The largest tensor, in bytes, a kernel can bind.
    pub fn max_binding_bytes(&self) -> u64 {
        self.inner
            .limits
            .max_storage_buffer_binding_size
            .min(self.inner.limits.max_buffer_size)
    }

    /// The largest `n` whose `n x n` f32 matrix fits one binding ([`Device::max_binding_bytes`]):
    /// the size limit of methods that hold all pairwise values of `n` points (exact t-SNE,
    /// Isomap, LLE). 5,792 under lavapipe's 128 MiB.
    pub fn max_square_side(&self) -> usize {
        let elems = self.max_binding_bytes() / 4;
        let mut n = (elems as f64).sqrt() as usize;
        while (n as u64 + 1) * (n as u64 + 1) <= elems {
            n += 1;
        }
        while n > 0 && (n as u64) * (n as u64) > elems {
            n -= 1;
        }
        n
    }

    /// Bytes held by live tensors and by the pool.
    pub fn memory(&self) -> MemoryStats {
        let p = lock(&self.inner.pool);
        MemoryStats {
            live_bytes: p.live_bytes,
            pooled_bytes: p.pooled_bytes,
        }
    }

    /// Dispatch and submit counters.
    pub fn dispatch_stats(&self) -> DispatchStats {
        let s = lock(&self.inner.state);
        DispatchStats {
            dispatches: s.dispatches,
            submits: s.submits,
        }
    }

    /// The memory budget in force (see [`DeviceOptions::memory_limit`]), `None` for none.
    pub fn memory_budget(&self) -> Option<u64> {
        self.inner.memory_budget
    }

    /// Frees every buffer kept in the pool (live tensors are untouched).
    pub fn release_pool(&self) {
        lock(&self.inner.pool).clear();
    }

    /// True when both handles refer to the same device.
    pub fn same(&self, other: &Device) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// A number identifying this device among the live ones.
    pub(crate) fn id(&self) -> usize {
        Arc::as_ptr(&self.inner) as usize
    }

    /// Returns a buffer of at least `bytes` bytes from the pool, or a new one.
    /// Fails with [`Error::TooLarge`] past the binding limit, [`Error::OutOfMemory`] when the
    /// buffer would take the device past its memory budget even after the pool is released,
    /// or when the device cannot allocate.
    pub(crate) fn alloc(
        &self,
        op: &'static str,
        shape: &[usize],
        bytes: u64,
    ) -> Result<(wgpu::Buffer, u64)> {
        let limit = self.max_binding_bytes();
        if bytes > limit {
            return Err(Error::TooLarge {
                op,
                shape: shape.to_vec(),
                bytes,
                limit,
            });
        }
        let class = size_class(bytes).min(self.inner.limits.max_buffer_size.max(bytes));
        if let Some(b) = lock(&self.inner.pool).take(class) {
            return Ok((b, class));
        }
        if let Some(budget) = self.inner.memory_budget {
            let mut pool = lock(&self.inner.pool);
            if pool.live_bytes + pool.pooled_bytes + class > budget {
                pool.clear();
            }
            if pool.live_bytes + class > budget {
                return Err(Error::OutOfMemory { op, bytes });
            }
        }
        let scope = self
            .inner
            .device
            .push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let buffer = self.inner.device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: class,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        if pollster::block_on(scope.pop()).is_some() {
            return Err(Error::OutOfMemory { op, bytes });
        }
        lock(&self.inner.pool).live_bytes += class;
        Ok((buffer, class))
    }

    /// Returns a tensor's buffer to the pool.
    pub(crate) fn recycle(&self, buffer: wgpu::Buffer, class: u64) {
        lock(&self.inner.pool).give(class, buffer);
    }

    fn pipeline(&self, kernel: &Kernel) -> Result<Arc<Pipeline>> {
        if let Some(p) = lock(&self.inner.pipelines).get(kernel) {
            return Ok(p.clone());
        }
        #[cfg(debug_assertions)]
        listed(kernel)?;
        let source = kernel.source()?;
        let immediates = crate::kernel::immediate_layout(&kernel.name(), &source, kernel.entry)?;
        let dev = &self.inner.device;
        let scope = dev.push_error_scope(wgpu::ErrorFilter::Validation);
        let desc = wgpu::ShaderModuleDescriptor {
            label: Some(kernel.family),
            source: wgpu::ShaderSource::Wgsl(source.into()),
        };
        let module = if self.inner.unchecked_shaders {
            // SAFETY: opted into with CINDER_UNCHECKED_SHADERS=1. Every Cinder kernel guards
            // its own indices (tested with the checks on); the flag drops naga's runtime
            // bounds checks, which cost about 15% on lavapipe.
            unsafe {
                dev.create_shader_module_trusted(desc, wgpu::ShaderRuntimeChecks::unchecked())
            }
        } else {
            dev.create_shader_module(desc)
        };
        let bindings = kernel.reads + kernel.writes + kernel.error_word as u32;
        let entries: Vec<wgpu::BindGroupLayoutEntry> = (0..bindings)
            .map(|i| wgpu::BindGroupLayoutEntry {
                binding: i,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Storage {
                        read_only: i < kernel.reads,
                    },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            })
            .collect();
        let layout = dev.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: None,
            entries: &entries,
        });
        let pl = dev.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: None,
            bind_group_layouts: &[Some(&layout)],
            immediate_size: self.inner.immediate_size,
        });
        let pipeline = dev.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(kernel.entry),
            layout: Some(&pl),
            module: &module,
            entry_point: Some(kernel.entry),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants: &kernel.constants,
                zero_initialize_workgroup_memory: false,
            },
            cache: None,
        });
        if let Some(err) = pollster::block_on(scope.pop()) {
            return Err(Error::ShaderCompile {
                kernel: kernel.name(),
                msg: err.to_string(),
            });
        }
        let p = Arc::new(Pipeline {
            pipeline,
            layout,
            immediates,
        });
        lock(&self.inner.pipelines).insert(kernel.clone(), p.clone());
        Ok(p)
    }

    /// Records one dispatch of `kernel` over `groups` workgroups, binding `inputs` read-only
    /// and `outputs` read-write, with `params` as the kernel's immediates. Nothing runs until
    /// the pending commands are submitted (readback, [`Device::sync`], or every few hundred
    /// dispatches). Returns `Err` when the binding counts do not match the kernel, the
    /// parameters are too large or hold a value that did not fit its 32-bit field
    /// ([`Params::check`]), a tensor lives on another device, or the kernel fails to
    /// compile.
    pub fn dispatch(
        &self,
        kernel: &Kernel,
        inputs: &[&DeviceTensor],
        outputs: &[&DeviceTensor],
        params: &Params,
        groups: (u32, u32, u32),
    ) -> Result<()> {
        let op = kernel.entry;
        // A size that did not fit its 32-bit parameter is refused, never truncated.
        params.check(op)?;
        if inputs.len() != kernel.reads as usize || outputs.len() != kernel.writes as usize {
            return Err(Error::invalid(
                op,
                format!(
                    "kernel {}::{} takes {} inputs and {} outputs, given {} and {}",
                    kernel.family,
                    kernel.entry,
                    kernel.reads,
                    kernel.writes,
                    inputs.len(),
                    outputs.len()
                ),
                &[],
            ));
        }
        if params.len() > self.inner.immediate_size as usize {
            return Err(Error::invalid(
                op,
                format!(
                    "{} bytes of parameters, over {}",
                    params.len(),
                    MAX_PARAMS_BYTES
                ),
                &[],
            ));
        }
        for t in inputs.iter().chain(outputs) {
            if !t.device().same(self) {
                return Err(Error::invalid(
                    op,
                    "tensor lives on another device",
                    t.shape(),
                ));
            }
        }
        let max = self.inner.limits.max_compute_workgroups_per_dimension;
        if groups.0 > max || groups.1 > max || groups.2 > max {
            return Err(Error::invalid(
                op,
                format!(
                    "kernel {}::{}: {groups:?} workgroups, over the device's {max} per dimension",
                    kernel.family, kernel.entry
                ),
                &[],
            ));
        }
        let bindings = inputs.len() + outputs.len() + kernel.error_word as usize;
        if bindings as u32 > self.inner.limits.max_storage_buffers_per_shader_stage {
            return Err(Error::invalid(
                op,
                format!(
                    "kernel {}::{} binds {bindings} buffers, over the device's {}",
                    kernel.family,
                    kernel.entry,
                    self.inner.limits.max_storage_buffers_per_shader_stage
                ),
                &[],
            ));
        }
        if groups.0 == 0 || groups.1 == 0 || groups.2 == 0 {
            return Ok(());
        }
        let pipeline = self.pipeline(kernel)?;
        if params.kinds() != pipeline.immediates.as_slice() {
            return Err(Error::invalid(
                op,
                format!(
                    "kernel {} reads immediates {:?} but was given {:?}",
                    kernel.name(),
                    pipeline.immediates,
                    params.kinds()
                ),
                &[],
            ));
        }
        let mut entries: Vec<wgpu::BindGroupEntry> = inputs
            .iter()
            .chain(outputs)
            .enumerate()
            .map(|(i, t)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: t.buffer(),
                    offset: 0,
                    size: wgpu::BufferSize::new(t.byte_len().max(4)),
                }),
            })
            .collect();
        if kernel.error_word {
            entries.push(wgpu::BindGroupEntry {
                binding: entries.len() as u32,
                resource: self.inner.error_word.as_entire_binding(),
            });
        }
        let bind = self
            .inner
            .device
            .create_bind_group(&wgpu::BindGroupDescriptor {
                label: None,
                layout: &pipeline.layout,
                entries: &entries,
            });
        let mut st = lock(&self.inner.state);
        for t in inputs {
            if let Some(msg) = st.failed.get(&t.producer()) {
                return Err(Error::DeviceLost(format!(
                    "{}::{}: an input was computed by commands the device rejected ({msg})",
                    kernel.family, kernel.entry
                )));
            }
        }
        let profiler = self.inner.profiler.as_ref();
        let started = Instant::now();
        if profiler.is_some() {
            // Every profiled dispatch gets a pass of its own (with its timestamps).
            st.pass = None;
        }
        if st.pass.is_none() {
            let at = st.profiled.len() as u32;
            let enc = st.encoder.get_or_insert_with(|| {
                self.inner
                    .device
                    .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None })
            });
            let stamps = profiler.and_then(|p| p.queries.as_ref()).map(|q| {
                wgpu::ComputePassTimestampWrites {
                    query_set: &q.set,
                    beginning_of_pass_write_index: Some(2 * at),
                    end_of_pass_write_index: Some(2 * at + 1),
                }
            });
            let pass = enc
                .begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: None,
                    timestamp_writes: stamps,
                })
                .forget_lifetime();
            st.pass = Some(pass);
        }
        let pass = st.pass.as_mut().expect("pass was just created");
        pass.set_pipeline(&pipeline.pipeline);
        pass.set_bind_group(0, &bind, &[]);
        if !params.is_empty() {
            pass.set_immediates(0, params.bytes());
        }
        pass.dispatch_workgroups(groups.0, groups.1, groups.2);
        for t in outputs {
            t.set_producer(st.seq);
        }
        st.pending += 1;
        st.dispatches += 1;
        if let Some(p) = profiler {
            st.pass = None;
            if p.queries.is_some() {
                st.profiled.push(profile::label(kernel));
                if st.profiled.len() as u32 >= PROFILED_PER_SUBMIT {
                    self.submit_locked(&mut st);
                }
            } else {
                self.submit_locked(&mut st);
                let _ = self.inner.device.poll(wgpu::PollType::wait_indefinitely());
                st.in_flight.clear();
                let wall = started.elapsed().as_secs_f64();
                profile::record(Clock::WallPerSubmit, &profile::label(kernel), wall);
            }
            return Ok(());
        }
        if st.pending >= MAX_PENDING_DISPATCHES {
            self.submit_locked(&mut st);
        }
        Ok(())
    }

    /// Before the current encoder is finished: resolves its timestamp queries into a
    /// mappable buffer (returned with the labels, for [`Device::profile_collect`]).
    fn profile_resolve(
        &self,
        st: &mut State,
        enc: &mut wgpu::CommandEncoder,
    ) -> Option<(wgpu::Buffer, Vec<String>)> {
        let q = self.inner.profiler.as_ref()?.queries.as_ref()?;
        if st.profiled.is_empty() {
            return None;
        }
        let labels = std::mem::take(&mut st.profiled);
        let n = labels.len() as u32;
        let bytes = 16 * n as u64;
        let staging = self.inner.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("profile readback"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        enc.resolve_query_set(&q.set, 0..2 * n, &q.resolve, 0);
        enc.copy_buffer_to_buffer(&q.resolve, 0, &staging, 0, bytes);
        Some((staging, labels))
    }

    /// After the submit that resolved them: waits for the timestamps and books each
    /// dispatch's time under its label. A readback that fails loses those figures only.
    fn profile_collect(&self, resolved: Option<(wgpu::Buffer, Vec<String>)>) {
        let Some((staging, labels)) = resolved else {
            return;
        };
        let Some(q) = self
            .inner
            .profiler
            .as_ref()
            .and_then(|p| p.queries.as_ref())
        else {
            return;
        };
        let done = Arc::new(Mutex::new(None));
        let d2 = done.clone();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            *lock(&d2) = Some(r);
        });
        let deadline = Instant::now() + READBACK_TIMEOUT;
        while lock(&done).is_none() && Instant::now() < deadline {
            let _ = self.inner.device.poll(wgpu::PollType::wait_indefinitely());
        }
        if !matches!(*lock(&done), Some(Ok(()))) {
            return;
        }
        if let Ok(view) = staging.get_mapped_range(..) {
            let ticks: &[u64] = bytemuck::cast_slice(&view[..]);
            for (i, l) in labels.iter().enumerate() {
                let dt = ticks[2 * i + 1].saturating_sub(ticks[2 * i]);
                profile::record(Clock::Timestamps, l, dt as f64 * q.period_ns * 1e-9);
            }
        }
        staging.unmap();
    }

    /// Records a copy of `src`'s data into `dst`'s buffer, in queue order. Returns `Err`
    /// when `src` was computed by commands the device rejected.
    pub(crate) fn copy_buffer(&self, src: &DeviceTensor, dst: &DeviceTensor) -> Result<()> {
        let bytes = src.byte_len();
        if bytes == 0 {
            return Ok(());
        }
        let mut st = lock(&self.inner.state);
        if let Some(msg) = st.failed.get(&src.producer()) {
            return Err(Error::DeviceLost(format!(
                "copy: the source was computed by commands the device rejected ({msg})"
            )));
        }
        dst.set_producer(st.seq);
        st.pass = None;
        let enc = st.encoder.get_or_insert_with(|| {
            self.inner
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None })
        });
        enc.copy_buffer_to_buffer(src.buffer(), 0, dst.buffer(), 0, bytes.next_multiple_of(4));
        st.pending += 1;
        Ok(())
    }

    fn submit_locked(&self, st: &mut State) {
        st.pass = None; // ends the compute pass
        let Some(mut enc) = st.encoder.take() else {
            return;
        };
        let resolved = self.profile_resolve(st, &mut enc);
        let idx = self.inner.queue.submit([enc.finish()]);
        self.profile_collect(resolved);
        self.note_submit(st);
        st.pending = 0;
        st.uploads = 0;
        st.submits += 1;
        st.in_flight.push_back(idx);
        let _ = self.inner.device.poll(wgpu::PollType::Poll);
        while st.in_flight.len() > MAX_IN_FLIGHT {
            let oldest = st.in_flight.pop_front().expect("non-empty");
            let _ = self.inner.device.poll(wgpu::PollType::Wait {
                submission_index: Some(oldest),
                timeout: None,
            });
        }
    }

    /// Books the command buffer just submitted: when the device rejected it (wgpu reports
    /// validation errors of a submit synchronously, to the handler that fills `gpu_error`),
    /// its number goes into `failed`, so what it was to compute reads back as `Err`; then
    /// the next number is opened. The device stays usable.
    fn note_submit(&self, st: &mut State) {
        if let Some(msg) = lock(&self.inner.gpu_error).take() {
            st.failed.insert(st.seq, msg);
        }
        st.seq += 1;
    }

    /// Submits every recorded command without waiting for it to run.
    pub fn flush(&self) {
        let mut st = lock(&self.inner.state);
        self.submit_locked(&mut st);
    }

    /// Submits every recorded command and waits until the device has finished all of it.
    /// Returns [`Error::DeviceLost`] if the device reported an error meanwhile, and
    /// [`Error::IndexOutOfRange`] if a kernel dispatched by this thread met a bad index since
    /// its last readback or sync.
    pub fn sync(&self) -> Result<()> {
        // Reading the error word back submits and waits for everything before it.
        self.read_bytes(&self.inner.error_word, 0, 0).map(|_| ())
    }

    fn check_error(&self) -> Result<()> {
        match lock(&self.inner.gpu_error).take() {
            Some(msg) => Err(Error::DeviceLost(msg)),
            None => Ok(()),
        }
    }

    /// Writes `data` to the start of `buffer`. Pending commands are submitted first, because
    /// `queue.write_buffer` lands before the next submit and a recycled buffer may still be
    /// read by them.
    pub(crate) fn upload_bytes(&self, t: &DeviceTensor, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let mut st = lock(&self.inner.state);
        if st.encoder.is_some() {
            self.submit_locked(&mut st);
        }
        self.inner.queue.write_buffer(t.buffer(), 0, data);
        t.set_producer(0);
        st.uploads += 1;
        if st.uploads >= MAX_UPLOADS_PER_SUBMIT {
            let idx = self.inner.queue.submit([]);
            st.submits += 1;
            st.in_flight.push_back(idx);
            st.uploads = 0;
        }
    }

    /// Reads the first `bytes` bytes of `buffer` back to the host, submitting and waiting,
    /// together with the device's error word (so a bad index that a kernel dispatched by this
    /// thread met is reported here as [`Error::IndexOutOfRange`], and the slot cleared).
    /// `producer` is the number of the command buffer that wrote the data (0: none): if the
    /// device rejected it, or the submit of this readback, the result is
    /// [`Error::DeviceLost`] saying so, never stale contents.
    pub(crate) fn read_bytes(
        &self,
        buffer: &wgpu::Buffer,
        bytes: u64,
        producer: u64,
    ) -> Result<Vec<u8>> {
        let size = bytes.next_multiple_of(4);
        let staging = self.inner.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: size + ERROR_WORD_BYTES,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let idx = {
            let mut st = lock(&self.inner.state);
            st.pass = None;
            let mut enc = st.encoder.take().unwrap_or_else(|| {
                self.inner
                    .device
                    .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None })
            });
            if size > 0 {
                enc.copy_buffer_to_buffer(buffer, 0, &staging, 0, size);
            }
            enc.copy_buffer_to_buffer(&self.inner.error_word, 0, &staging, size, ERROR_WORD_BYTES);
            let resolved = self.profile_resolve(&mut st, &mut enc);
            let idx = self.inner.queue.submit([enc.finish()]);
            self.profile_collect(resolved);
            let this = st.seq;
            self.note_submit(&mut st);
            st.pending = 0;
            st.uploads = 0;
            st.submits += 1;
            st.in_flight.clear();
            for seq in [this, producer] {
                if let Some(msg) = st.failed.get(&seq) {
                    return Err(Error::DeviceLost(format!(
                        "the commands that computed this data were rejected by the device: {msg}"
                    )));
                }
            }
            idx
        };
        let done = Arc::new((Mutex::new(None), Condvar::new()));
        let d2 = done.clone();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let (m, cv) = &*d2;
            *m.lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
            cv.notify_all();
        });
        self.inner
            .device
            .poll(wgpu::PollType::Wait {
                submission_index: Some(idx),
                timeout: None,
            })
            .map_err(|e| Error::DeviceLost(e.to_string()))?;
        // The map callback runs in whichever thread polls the device next, possibly another
        // thread's poll that is still running when ours returns: poll, then wait on the
        // callback's signal, until it has run (bounded by time, not by a number of polls).
        let deadline = Instant::now() + READBACK_TIMEOUT;
        let mapped = loop {
            let (m, cv) = &*done;
            let _ = self.inner.device.poll(wgpu::PollType::Poll);
            let g = lock(m);
            let (mut g, _) = cv
                .wait_timeout_while(g, Duration::from_millis(1), |r| r.is_none())
                .unwrap_or_else(|p| p.into_inner());
            if let Some(r) = g.take() {
                break r;
            }
            if Instant::now() > deadline {
                return Err(Error::DeviceLost(format!(
                    "a readback was not mapped within {} s",
                    READBACK_TIMEOUT.as_secs()
                )));
            }
        };
        self.check_error()?;
        if let Err(e) = mapped {
            return Err(Error::DeviceLost(format!("mapping a readback buffer: {e}")));
        }
        let (out, word) = {
            let view = staging
                .get_mapped_range(..)
                .map_err(|e| Error::DeviceLost(e.to_string()))?;
            let w: &[u32] = bytemuck::cast_slice(&view[size as usize..]);
            let at = (error_slot() * WORDS_PER_SLOT) as usize;
            let mut word = [0u32; WORDS_PER_SLOT as usize];
            word.copy_from_slice(&w[at..at + WORDS_PER_SLOT as usize]);
            (view[..bytes as usize].to_vec(), word)
        };
        staging.unmap();
        if let Some(err) = crate::checks::decode(self.id(), &word) {
            let at = (error_slot() * WORDS_PER_SLOT * 4) as u64;
            self.inner.queue.write_buffer(
                &self.inner.error_word,
                at,
                &[0u8; WORDS_PER_SLOT as usize * 4],
            );
            return Err(err);
        }
        Ok(out)
    }
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let i = &self.inner.info;
        write!(
            f,
            "Device({} [{:?}, {:?}])",
            i.name, i.backend, i.device_type
        )
    }
}

/// In debug builds, every kernel of a built-in family must be one that `ops::all_kernels()`
/// lists, which is what the naga test validates: a kernel built by hand somewhere else
/// would be dispatched without that check. Returns [`Error::ShaderCompile`] otherwise.
#[cfg(debug_assertions)]
fn listed(kernel: &Kernel) -> Result<()> {
    static LISTED: OnceLock<std::collections::HashSet<Kernel>> = OnceLock::new();
    let set = LISTED.get_or_init(|| crate::ops::all_kernels().into_iter().collect());
    if set.contains(kernel) {
        return Ok(());
    }
    Err(Error::ShaderCompile {
        kernel: kernel.name(),
        msg: "not listed in its module's kernels(), so the naga test does not validate it".into(),
    })
}

/// Locks a mutex, recovering from poisoning (a panicked test thread must not wedge the
/// shared device).
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
