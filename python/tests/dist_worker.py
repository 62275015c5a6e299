"""Run by test_torch.py in `world` processes (torch.multiprocessing.spawn, gloo on localhost):
initializes DTensors sharded several ways and an FSDP2-sharded model, gathers them, and rank 0
saves the full tensors for the test to compare."""
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
        # FSDP2: fully_shard puts every parameter in a Shard(0) DTensor.
        from torch.distributed.fsdp import fully_shard

        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(33, 65), torch.nn.ReLU(),
                                    torch.nn.Conv1d(65, 30, 3, groups=5),
                                    torch.nn.LayerNorm(7))
        fully_shard(model)
        ift.init_module_(model, seed=99, rules={"0.bias": "uniform(-1, 1)"})
        for pname, p in model.named_parameters():
            result["fsdp." + pname] = p.full_tensor()
        if rank == 0:
            torch.save(result, out)
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    world, port, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    import torch.multiprocessing as mp

    mp.spawn(run, args=(world, port, out), nprocs=world, join=True)
