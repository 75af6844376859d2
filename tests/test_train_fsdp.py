"""``trainer.strategy: fsdp`` builds Lightning's FSDPStrategy that shards each transformer layer.

Lightning runs FSDP on GPUs only (a CPU Trainer with it is refused), so on CPU this checks the
strategy and what its wrap policy selects in a real base-size model, and that the refusal
names the fix; the sharded run itself is a GPU-machine job (README, "Scaling out").
"""
from __future__ import annotations

import pytest
from lightning.pytorch.strategies import FSDPStrategy
from torch.distributed.fsdp import ShardingStrategy

from lib.config import compose
from lib.models.seq import Block, build_model
from lib.train.run import build_trainer, fsdp_strategy


def test_fsdp_strategy_wraps_every_transformer_layer_of_the_base_encoder():
    cfg = compose("smoke", ["trainer.strategy=fsdp", "model.size=base", "trainer.fsdp.sharding_strategy=HYBRID_SHARD",
                            "trainer.fsdp.activation_checkpointing=true"])
    strategy = fsdp_strategy(cfg.trainer.fsdp)
    assert isinstance(strategy, FSDPStrategy)
    assert strategy.sharding_strategy == ShardingStrategy.HYBRID_SHARD
    assert strategy.cpu_offload.offload_params is False
    model = build_model(cfg.model, n_items=50)
    units = strategy.kwargs["auto_wrap_policy"]._run_policy(model, set(), {})
    # one unit per layer; the item embeddings (tied to the output head) stay in FSDP's root unit
    assert len(units) == cfg.model.sizes.base.layers and all(isinstance(m, Block) for m in units)
    checkpointed = strategy._activation_checkpointing_kwargs["auto_wrap_policy"]._run_policy(model, set(), {})
    assert set(checkpointed) == set(units)


def test_fsdp_trainer_asks_for_a_gpu_on_cpu(tmp_path):
    cfg = compose("smoke", ["trainer.strategy=fsdp", "trainer.accelerator=cpu"])
    with pytest.raises(ValueError, match="requires a GPU accelerator"):
        build_trainer(cfg, tmp_path)
