"""Layout ops: reshape, flatten, permute, transpose, narrow, slice, concat, pad, and the
constructors arange and eye."""

import torch
import torch.nn.functional as F


def build(fam):
    x = fam.uniform(2, 3, 4)
    fam.case("reshape", "reshape", {"x": x}, lambda x: x.reshape(4, 6), args={"shape": [4, 6]})
    fam.case("reshape_scalar", "reshape", {"x": fam.uniform(1)}, lambda x: x.reshape(()),
             args={"shape": []})
    fam.case("reshape_bad", "reshape", {"x": x}, lambda x: x.reshape(5, 5),
             args={"shape": [5, 5]}, expect_error=True)
    fam.case("flatten_1", "flatten_from", {"x": x}, lambda x: torch.flatten(x, 1),
             args={"axis": 1})
    fam.case("flatten_0", "flatten_from", {"x": x}, lambda x: torch.flatten(x, 0),
             args={"axis": 0})
    for dims in ([2, 0, 1], [0, 2, 1], [1, 0, 2]):
        fam.case(f"permute_{''.join(map(str, dims))}", "permute", {"x": x},
                 lambda x, d=dims: x.permute(*d), args={"dims": dims})
    fam.case("transpose_0_2", "transpose", {"x": x}, lambda x: x.transpose(0, 2),
             args={"d0": 0, "d1": 2})
    fam.case("transpose_neg", "transpose", {"x": x}, lambda x: x.transpose(-1, -2),
             args={"d0": -1, "d1": -2})
    fam.case("t", "t", {"x": fam.uniform(3, 5)}, lambda x: x.mT)
    fam.case("narrow", "narrow", {"x": x}, lambda x: x.narrow(2, 1, 2),
             args={"axis": 2, "start": 1, "len": 2})
    fam.case("narrow_empty", "narrow", {"x": x}, lambda x: x.narrow(1, 3, 0),
             args={"axis": 1, "start": 3, "len": 0})
    fam.case("narrow_bad", "narrow", {"x": x}, lambda x: x.narrow(1, 2, 2),
             args={"axis": 1, "start": 2, "len": 2}, expect_error=True)
    fam.case("slice", "slice", {"x": x}, lambda x: x[:, 1:3], args={"axis": 1, "start": 1,
                                                                    "end": 3})
    a, b, c = fam.uniform(2, 1, 4), fam.uniform(2, 3, 4), fam.uniform(2, 0, 4)
    fam.case("concat_1", "concat", {"a": a, "b": b, "c": c},
             lambda a, b, c: torch.cat([a, b, c], 1), args={"axis": 1})
    fam.case("concat_neg", "concat", {"a": b, "b": b, "c": b},
             lambda a, b, c: torch.cat([a, b, c], -1), args={"axis": -1})
    fam.case("concat_bad", "concat", {"a": a, "b": b, "c": c},
             lambda a, b, c: torch.cat([a, b, c], 0), args={"axis": 0}, expect_error=True)
    img = fam.uniform(2, 3, 4, 5)
    fam.case("pad_hw", "pad", {"x": img}, lambda x: F.pad(x, (2, 1, 1, 0), value=0.5),
             args={"pads": [[1, 0], [2, 1]], "value": 0.5})
    fam.case("pad_all", "pad", {"x": x}, lambda x: F.pad(x, (1, 1, 0, 2, 3, 0)),
             args={"pads": [[3, 0], [0, 2], [1, 1]], "value": 0.0})
    fam.custom("arange", "arange", {"expect.out": torch.arange(0.5, 3.2, 0.25)},
               args={"start": 0.5, "end": 3.2, "step": 0.25})
    fam.custom("arange_neg", "arange", {"expect.out": torch.arange(2.0, -1.0, -0.5)},
               args={"start": 2.0, "end": -1.0, "step": -0.5})
    fam.custom("eye", "eye", {"expect.out": torch.eye(3, 5)}, args={"n": 3, "m": 5})
