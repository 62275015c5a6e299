"""Run by test_torch.py in `world` processes (torch.multiprocessing.spawn, gloo on localhost):
initializes DTensors sharded several ways (Shard, Replicate, _StridedShard on 1-D and 2-D
meshes), a model with per-gate and per-part blocks sharded by FSDP2, by columns and by strided
rows, and an FSDP2 + tensor-parallel model; gathers them, and rank 0 saves the full tensors for
the test to compare."""
import os
import sys

import torch
import torch.distributed as dist


def run(rank, world, port, out):
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.tensor import Replicate, Shard, distribute_tensor

        import initforge.torch as ift

        mesh = init_device_mesh("cpu", (world,))
        result = {}
        cases = [
            ("w0", (37, 1500), [Shard(0)], "he_truncated_normal"),
            ("w1", (37, 1500), [Shard(1)], "he_normal"),
            ("c2", (8, 6, 5, 5), [Shard(2)], "glorot_uniform"),
            ("r", (70_000,), [Replicate()], "normal(0, 0.02)"),
            ("e", (300, 200), [Shard(1)], "eye(gain=2)"),
        ]
        for name, shape, placements, scheme in cases:
            dt = distribute_tensor(torch.zeros(shape), mesh, placements)
            ift.init_dtensor_(dt, scheme, seed=1234, key=name)
            result[name] = dt.full_tensor()
        # _StridedShard (FSDP2 + tensor parallel): a 2-D mesh sharded right to left, and on
        # one mesh dimension a split factor that leaves each rank several column runs.
        from torch.distributed.tensor.placement_types import _StridedShard

        tp = 2 if world % 2 == 0 else 1
        mesh2 = init_device_mesh("cpu", (world // tp, tp))
        strided = [
            ("s0", (37, 24), mesh2, [_StridedShard(0, split_factor=tp), Shard(0)], "he_normal"),
            ("s1", (10, 45), mesh, [_StridedShard(1, split_factor=3)], "glorot_uniform"),
            ("s2", (36, 12), mesh2, [Shard(1), _StridedShard(0, split_factor=3)], "orthogonal"),
        ]
        # src_data_rank=None: every rank cuts its own copy (torch's scatter of an uneven
        # strided shard asserts equal pieces).
        for name, shape, m, placements, scheme in strided:
            dt = distribute_tensor(torch.zeros(shape), m, placements, src_data_rank=None)
            ift.init_dtensor_(dt, scheme, seed=1234, key=name)
            result[name] = dt.full_tensor()
            # Which global elements this rank holds, by torch's own scatter of their indices.
            idx = distribute_tensor(torch.arange(shape[0] * shape[1]).view(shape), m, placements,
                                    src_data_rank=None)
            got = torch.full(shape, -1)
            for g, loc in ift.dtensor_boxes(idx):
                got[tuple(slice(*r) for r in g)] = idx.to_local()[tuple(slice(*r) for r in loc)]
            held = idx.to_local().numel()
            assert int((got >= 0).sum()) == held and torch.equal(
                got[got >= 0], torch.arange(shape[0] * shape[1]).view(shape)[got >= 0]), name
        # FSDP2: fully_shard puts every parameter in a Shard(0) DTensor; the LSTM's gates and
        # the attention's packed q/k/v are row blocks that straddle the shards.
        from torch.distributed.fsdp import fully_shard

        from model_defs import dist_model

        model = dist_model()
        fully_shard(model)
        ift.init_module_(model, seed=99, rules={"0.bias": "uniform(-1, 1)"})
        for pname, p in model.named_parameters():
            result["fsdp." + pname] = p.full_tensor()
        # The same model with every parameter sharded by columns (Shard(1)) or strided rows.
        for tag, placement in (("col", Shard(1)), ("str", _StridedShard(0, split_factor=3))):
            model = dist_model()
            for mod in model.modules():
                for pname, p in list(mod.named_parameters(recurse=False)):
                    pl = placement if p.dim() > 1 else Shard(0)
                    dt = distribute_tensor(p.detach(), mesh, [pl], src_data_rank=None)
                    setattr(mod, pname, torch.nn.Parameter(dt))
            ift.init_module_(model, seed=99, rules={"0.bias": "uniform(-1, 1)"})
            for pname, p in model.named_parameters():
                result[f"{tag}.{pname}"] = p.full_tensor()
        # FSDP2 + tensor parallel as torch composes them (the source of _StridedShard).
        from torch.distributed.tensor.parallel import (ColwiseParallel, RowwiseParallel,
                                                       parallelize_module)

        from model_defs import tp_model

        dp = min(2, world)
        mesh_2d = init_device_mesh("cpu", (dp, world // dp), mesh_dim_names=("dp", "tp"))
        model = tp_model()
        parallelize_module(model, mesh_2d["tp"], {"0": ColwiseParallel(), "2": RowwiseParallel()})
        fully_shard(model, mesh=mesh_2d["dp"])
        ift.init_module_(model, seed=5)
        for pname, p in model.named_parameters():
            result["tp." + pname] = p.full_tensor()
        if rank == 0:
            torch.save(result, out)
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    world, port, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    import torch.multiprocessing as mp

    mp.spawn(run, args=(world, port, out), nprocs=world, join=True)
