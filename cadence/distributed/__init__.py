"""Data-parallel training on ``torch.distributed``: environment, DDP or FSDP wrapping, reductions, launch,
LR scaling, sharded checkpoints.

Everything works unchanged in a single process (rank 0 of 1), so one loop serves both::

    from cadence import distributed

    distributed.init_from_env()                 # reads RANK/WORLD_SIZE/... set by torchrun; no-op otherwise
    device = distributed.default_device()       # cuda:LOCAL_RANK or cpu
    model = distributed.wrap_model(model, device)
    loader = TensorLoader(x, y, batch_size, rank=distributed.get_rank(),
                          world_size=distributed.get_world_size())
    ...
    metrics = distributed.all_reduce_mean({"loss": local_mean_loss})
    if distributed.is_main_process():
        write(metrics)

See docs/distributed.md for launching on one or several machines and for how the learning rate is scaled.
"""

from cadence.distributed.data import shard_dataloader
from cadence.distributed.ddp import (
    CollectiveTimeoutError,
    all_reduce_mean,
    all_reduce_mean_tensor,
    all_reduce_sum_tensor,
    broadcast_object,
    changes_trainable,
    named_timeouts,
    unwrap_model,
    wrap_model,
)
from cadence.distributed.environment import (
    barrier,
    check_world_size,
    default_device,
    get_local_rank,
    get_rank,
    get_world_size,
    init_from_env,
    is_distributed,
    is_main_process,
    launched_by_torchrun,
    main_process_first,
    restarted_by_torchrun,
)
from cadence.distributed.fsdp import (
    STRATEGIES,
    ShardedCheckpointError,
    check_strategy,
    is_sharded,
    load_sharded,
    save_sharded,
    shard_model,
)
from cadence.distributed.launch import find_free_port, launch_local, strip_nproc
from cadence.distributed.scaling import (
    LRScalingPlan,
    ScaledSchedule,
    derive_warmup_steps,
    lr_scaling_plan,
    warms_up,
)

__all__ = [
    "STRATEGIES",
    "CollectiveTimeoutError",
    "LRScalingPlan",
    "RecordLRScaling",
    "ScaledSchedule",
    "ShardedCheckpointError",
    "all_reduce_mean",
    "all_reduce_mean_tensor",
    "all_reduce_sum_tensor",
    "barrier",
    "broadcast_object",
    "changes_trainable",
    "check_strategy",
    "check_world_size",
    "default_device",
    "derive_warmup_steps",
    "find_free_port",
    "get_local_rank",
    "get_rank",
    "get_world_size",
    "init_from_env",
    "is_distributed",
    "is_main_process",
    "is_sharded",
    "launch_local",
    "launched_by_torchrun",
    "load_sharded",
    "lr_scaling_plan",
    "main_process_first",
    "named_timeouts",
    "restarted_by_torchrun",
    "save_sharded",
    "shard_dataloader",
    "shard_model",
    "strip_nproc",
    "unwrap_model",
    "warms_up",
    "wrap_model",
]


def __getattr__(name: str) -> object:
    # A Trainer callback, defined in the callbacks layer; resolved lazily so that this package never
    # imports cadence.train (the Trainer imports this package).
    if name == "RecordLRScaling":
        from cadence.callbacks.lr_scaling import RecordLRScaling

        return RecordLRScaling
    raise AttributeError(f"module 'cadence.distributed' has no attribute {name!r}")
