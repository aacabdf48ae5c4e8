#!/usr/bin/env bash
# Builds, here, a bundle that measures Cinder on a machine with a GPU and no Rust toolchain:
# release binaries of the device and model test suites, the kernel and training-step benches
# and device_info (x86-64, stripped), Fashion-MNIST (unless --no-data), the Vulkan loader's
# package (unless --no-loader), scripts/torch_step.py, and a run.sh that runs them all against
# the first non-CPU adapter and writes every figure and the test output to a directory.
#
#   scripts/gpu-bundle.sh [--out DIR] [--no-data] [--no-loader]   # default DIR: target/gpu-bundle
#   # then, on the GPU machine:
#   DIR/run.sh RESULTS_DIR
#
# The bundle is DIR and DIR.tar.gz (copy either). See docs/performance.md for what it
# measured.
set -euo pipefail
cd "$(dirname "$0")/.."

out=target/gpu-bundle
data=1
loader=1
while [ $# -gt 0 ]; do
    case "$1" in
        --out) out="$2"; shift 2 ;;
        --no-data) data=0; shift ;;
        --no-loader) loader=0; shift ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) echo "gpu-bundle: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
[ "$(uname -m)" = x86_64 ] || { echo "gpu-bundle: builds x86-64 binaries on x86-64 only" >&2; exit 1; }

rm -rf "$out"
mkdir -p "$out/bin"

# Prints the executables cargo built for the given targets (from its JSON messages).
executables() {
    python3 -c '
import json, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable"):
        kind = m["target"]["kind"][0]
        name = m["target"]["name"]
        dest = name if kind == "example" else f"{kind}-{name}"
        print(dest, m["executable"])
'
}

echo "gpu-bundle: building release test suites, benches and device_info"
{
    cargo test --release --no-run --message-format=json -p cinder-device -p cinder-models
    cargo bench --no-run --message-format=json --bench kernels --bench train_step
    cargo build --release --message-format=json --example device_info
} 2>/dev/null | executables | sort -u | while read -r dest exe; do
    # test-<suite>, lib-<crate> (unit tests), bench-<name>, device_info
    cp "$exe" "$out/bin/$dest"
done
ls "$out/bin"
if command -v strip >/dev/null; then
    strip "$out"/bin/* 2>/dev/null || true
fi

if [ "$data" = 1 ]; then
    src=${CINDER_DATA:-/usr/share/datasets/fashion-mnist}
    if [ -f "$src/train-images-idx3-ubyte.gz" ] || [ -f "$src/train-images-idx3-ubyte" ]; then
        mkdir -p "$out/data"
        cp "$src"/*-ubyte* "$out/data/"
    else
        echo "gpu-bundle: no Fashion-MNIST in $src (run scripts/setup.sh); the model suites need it" >&2
        exit 1
    fi
fi

if [ "$loader" = 1 ]; then
    mkdir -p "$out/deb"
    (cd "$out/deb" && apt-get download libvulkan1 >/dev/null 2>&1) \
        || echo "gpu-bundle: could not download libvulkan1; run.sh will rely on the machine's loader" >&2
fi

cp scripts/torch_step.py "$out/"
git rev-parse HEAD > "$out/COMMIT" 2>/dev/null || true

cat > "$out/run.sh" <<'RUN'
#!/usr/bin/env bash
# Runs the bundle against the first non-CPU adapter; every figure and log goes to $1.
# CINDER_ALLOW_CPU=1 runs on a CPU adapter too (to try the bundle where it was built).
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
res="${1:?usage: run.sh RESULTS_DIR}"
mkdir -p "$res"
res="$(cd "$res" && pwd)"
start=$(date +%s)
log() { echo "[run.sh +$(( $(date +%s) - start ))s] $*" | tee -a "$res/summary.txt"; }

# The Vulkan loader: the machine's, else the bundled package, unpacked beside the bundle.
if ! ldconfig -p 2>/dev/null | grep -q 'libvulkan.so.1'; then
    for f in "$here"/deb/*.deb; do
        [ -f "$f" ] && dpkg -x "$f" "$here/root"
    done
    export LD_LIBRARY_PATH="$here/root/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
fi
# NVIDIA's ICD where the container mounts it outside the usual places.
for icd in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json; do
    if [ -z "${VK_DRIVER_FILES:-}" ] && [ -f "$icd" ]; then export VK_DRIVER_FILES="$icd"; fi
done
[ -d "$here/data" ] && export CINDER_DATA="$here/data"
export CINDER_BACKEND="${CINDER_BACKEND:-vulkan}"
bin="$here/bin"

log "bundle $(cat "$here/COMMIT" 2>/dev/null) on $(hostname), $(nproc) CPUs"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$res/nvidia-smi.txt" 2>&1 || true
"$bin/device_info" --n 1024 > "$res/device_info.txt" 2>&1
log "device_info: $(grep '^adapter' "$res/device_info.txt" || tail -1 "$res/device_info.txt")"
if grep -q '^adapter:.*Cpu' "$res/device_info.txt" && [ "${CINDER_ALLOW_CPU:-0}" != 1 ]; then
    log "the adapter is a CPU: stopping (CINDER_ALLOW_CPU=1 runs anyway)"
    exit 1
fi
for n in 2048 4096; do
    timeout 120 "$bin/device_info" --n "$n" > "$res/device_info_$n.txt" 2>&1
    log "matmul n=$n: $(tail -1 "$res/device_info_$n.txt")"
done

status=0
for t in "$bin"/test-* "$bin"/lib-*; do
    [ -x "$t" ] || continue
    name=$(basename "$t")
    timeout 240 "$t" --test-threads 4 > "$res/$name.txt" 2>&1
    rc=$?
    [ $rc = 0 ] || status=1
    log "tests $name: exit $rc, $(grep -E '^test result' "$res/test-$name.txt" | tail -1)"
done

CINDER_PROFILE=1 timeout 180 "$bin/bench-train_step" --bench > "$res/profile-train_step.txt" 2>&1
log "profiled steps: $(grep -c '^|' "$res/profile-train_step.txt") table rows"
timeout 180 "$bin/bench-train_step" --bench > "$res/bench-train_step.txt" 2>&1
log "train_step: $(grep -E 'dispatches|thrpt' "$res/bench-train_step.txt" | tr -s ' ' | tr '\n' ';')"
timeout 150 "$bin/bench-kernels" --bench --warm-up-time 1 --measurement-time 2 > "$res/bench-kernels.txt" 2>&1
log "kernels bench: exit $?"
# The convolution paths, each forced, for the per-shape choice on this GPU.
for path in im2col implicit; do
    CINDER_CONV=$path timeout 90 "$bin/bench-kernels" --bench --warm-up-time 1 \
        --measurement-time 2 conv2d/ > "$res/bench-conv-$path.txt" 2>&1
    log "conv2d rows, CINDER_CONV=$path: exit $?"
done

if python3 -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null; then
    timeout 120 python3 "$here/torch_step.py" --device cuda --seconds 5 --matmul 1024 2048 4096 \
        > "$res/torch.txt" 2>&1
    log "PyTorch: $(tail -1 "$res/torch.txt")"
else
    log "PyTorch with CUDA not found: no side-by-side figures"
fi
log "done, exit $status"
exit $status
RUN
chmod +x "$out/run.sh"

tar -C "$(dirname "$out")" -czf "$out.tar.gz" "$(basename "$out")"
du -sh "$out" "$out.tar.gz"
