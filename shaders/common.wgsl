// Prepended by the host to every shader family (kernel::Kernel::source): helpers that WGSL,
// having no includes, would otherwise repeat in every file.

// Linear invocation index of a 1-D kernel dispatched with kernel::grid_1d, which folds more
// than 65535 workgroups into a 2-D grid; `wg` is the workgroup size. Callers guard the
// overhang.
fn grid_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32, wg: u32) -> u32 {
    return (wid.y * nwg.x + wid.x) * wg + lid;
}

// Elements each invocation of a 1-D elementwise-style kernel handles, at a stride of the
// whole grid (so neighbouring invocations touch neighbouring elements on every pass). Must
// equal kernel::ELEMS_PER_INVOCATION. On lavapipe the cost is mostly per invocation: 8
// elements each made add_scalar over 1.25M elements 3.3x faster than 1.
const EPT: u32 = 8u;
