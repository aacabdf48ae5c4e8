"""Index ops: gather, index_select, scatter_add, one_hot and the Embedding layer, with
repeated indices, empty indices, and out-of-range indices (PyTorch raises; Cinder reports
them at the next readback)."""

import torch
import torch.nn.functional as F


def build(fam):
    x = fam.uniform(3, 4, 5)
    for axis in range(3):
        ishape = [3, 4, 5]
        ishape[axis] = 2 + axis
        idx = fam.randint(*ishape, high=x.shape[axis])
        fam.case(f"gather_{axis}", "gather", {"x": x, "index": idx},
                 lambda x, index, a=axis: torch.gather(x, a, index), args={"axis": axis})
        sel = torch.tensor([2, 0, 2, 1])[: x.shape[axis]].clamp(max=x.shape[axis] - 1)
        sel = torch.cat([sel, sel[:1]])  # a repeated index
        fam.case(f"index_select_{axis}", "index_select", {"x": x, "index": sel},
                 lambda x, index, a=axis: torch.index_select(x, a, index), args={"axis": axis})
        src = fam.uniform(*ishape)
        fam.case(f"scatter_add_{axis}", "scatter_add", {"x": x, "index": idx, "src": src},
                 lambda x, index, src, a=axis: x.scatter_add(a, index, src),
                 args={"axis": axis})
    fam.case("gather_empty", "gather", {"x": x, "index": torch.zeros(3, 0, 5, dtype=torch.long)},
             lambda x, index: torch.gather(x, 1, index), args={"axis": 1})
    fam.case("index_select_empty", "index_select",
             {"x": x, "index": torch.zeros(0, dtype=torch.long)},
             lambda x, index: torch.index_select(x, 0, index), args={"axis": 0})
    labels = torch.tensor([[2, 0], [3, 3], [1, 0]])
    fam.case("one_hot", "one_hot", {"labels": labels},
             lambda labels: F.one_hot(labels, 4).float(), args={"classes": 4})
    fam.case("one_hot_1d", "one_hot", {"labels": torch.tensor([0, 6, 2])},
             lambda labels: F.one_hot(labels, 7).float(), args={"classes": 7})
    # out of range: PyTorch raises, Cinder reports it at the next readback
    bad = torch.tensor([[0, 7], [1, 2], [0, 0]])
    y = fam.uniform(3, 4)
    fam.case("gather_out_of_range", "gather", {"x": y, "index": bad},
             lambda x, index: torch.gather(x, 1, index), args={"axis": 1}, expect_error=True)
    fam.case("index_select_out_of_range", "index_select",
             {"x": y, "index": torch.tensor([1, 3])},
             lambda x, index: torch.index_select(x, 0, index), args={"axis": 0},
             expect_error=True)
    fam.case("scatter_add_out_of_range", "scatter_add",
             {"x": y, "index": bad, "src": fam.uniform(3, 2)},
             lambda x, index, src: x.scatter_add(1, index, src), args={"axis": 1},
             expect_error=True)
    fam.case("one_hot_out_of_range", "one_hot", {"labels": torch.tensor([0, 4])},
             lambda labels: F.one_hot(labels, 4).float(), args={"classes": 4},
             expect_error=True)
    # the Embedding layer with PyTorch's parameter name
    torch.manual_seed(0)
    emb = torch.nn.Embedding(10, 3)
    ids = torch.tensor([[1, 9, 1], [0, 4, 4]])
    out = emb(ids)
    cot = fam.randn(*out.shape)
    (out * cot).sum().backward()
    fam.custom("embedding", "Embedding",
               {"weight": emb.weight, "ids": ids, "cot": cot, "expect.out": out,
                "expect.grad.weight": emb.weight.grad}, args={"num": 10, "dim": 3})
    fam.custom("embedding_out_of_range", "Embedding",
               {"weight": emb.weight, "ids": torch.tensor([3, 10]), "cot": torch.zeros(2, 3)},
               args={"num": 10, "dim": 3}, expect_error=True)
