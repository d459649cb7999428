"""Training processes and devices: one process is a no-op world; the accelerate configs set
what finetune.distributed reads; device choices for training are checked before any work.
(Two real processes: tests/test_finetune_multiprocess.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from finetune import distributed
from finetune.base import training_device, training_dtype
from finetune.config import TrainConfig
from sim_core.base.errors import ModelError

ROOT = Path(__file__).resolve().parents[1]
CUDA = torch.cuda.is_available()


def test_one_process_world_is_a_no_op(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert distributed.rank() == 0 and distributed.world_size() == 1 and distributed.is_main()
    rows = list(range(7))
    assert distributed.share(rows) == rows
    assert distributed.all_sum([1.5, 2]) == [1.5, 2.0]
    assert distributed.any_true(True) and not distributed.any_true(False)
    assert distributed.same_everywhere("split")


def test_share_takes_every_world_th_row(monkeypatch):
    """Before the process group starts, the launcher's RANK / WORLD_SIZE say who is who."""
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.delenv("ACCELERATE_USE_FSDP", raising=False)
    shares = []
    for rank in range(3):
        monkeypatch.setenv("RANK", str(rank))
        shares.append(distributed.share(list(range(8))))
    assert shares == [[0, 3, 6], [1, 4, 7], [2, 5]]
    assert sorted(r for share in shares for r in share) == list(range(8))   # each row once
    assert not distributed.is_main()
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")         # sharded model: all in lockstep
    assert distributed.share(list(range(8))) == list(range(8))


@pytest.mark.parametrize("config, fsdp", [("accelerate-ddp.yaml", False),
                                          ("accelerate-fsdp.yaml", True)])
def test_committed_accelerate_configs(config, fsdp, monkeypatch):
    """What `accelerate launch --config_file configs/...` puts in the environment."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_multi_gpu_env

    args = launch_command_parser().parse_args(
        ["--config_file", str(ROOT / "configs" / config), "--num_processes", "2", "-m",
         "finetune", "train"])
    args, _, _ = _validate_launch_command(args)
    assert args.multi_gpu != fsdp and bool(args.use_fsdp) == fsdp
    env = prepare_multi_gpu_env(args)
    assert env["ACCELERATE_MIXED_PRECISION"] == "no"         # finetune picks the precision
    monkeypatch.delenv("ACCELERATE_USE_FSDP", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert distributed.fsdp() == fsdp
    if fsdp:
        assert env["FSDP_VERSION"] == "2" and env["FSDP_CPU_RAM_EFFICIENT_LOADING"] == "true"


def test_training_device_choices(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert training_device("cpu") == "cpu"
    assert training_device("auto") == ("cuda:0" if CUDA else "cpu")
    with pytest.raises(ModelError, match="Unknown device"):
        training_device("tpu")
    assert training_dtype(TrainConfig(), "cpu") == "float32"        # as the defaults were chosen
    assert training_dtype(TrainConfig(dtype="bfloat16"), "cpu") == "bfloat16"
    # under a launcher each process takes its own GPU: an index is refused
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    with pytest.raises(ModelError, match="its own GPU"):
        training_device("cuda:1")
    assert training_device("cpu") == "cpu"
    assert training_device("auto") == ("cuda:1" if CUDA else "cpu")


@pytest.mark.skipif(CUDA, reason="checks the refusal on a machine without CUDA")
def test_training_cuda_refused_without_gpu_before_any_work(tiny_model_dir):
    from test_finetune_train import fixed_split, names

    from finetune.jobs import jobs_dir, start_job
    from finetune.train import train_adapter
    from sim_core.evaluation.splits import Split, SplitInfo

    before = names()
    with pytest.raises(ModelError, match="no CUDA GPU"):
        train_adapter(fixed_split(), name="never", base="no-such-model",
                      config=TrainConfig(device="cuda"))
    jobs = sorted(p.name for p in jobs_dir().iterdir())
    for device, words in (("cuda:1", "no CUDA GPU"), ("gpu", "Unknown device")):
        with pytest.raises(ModelError, match=words):   # the page sees it; no job is started
            start_job(Split(train=fixed_split().train, val=[], test=[], info=SplitInfo()),
                      name="never", base=str(tiny_model_dir),
                      config=TrainConfig(device=device))
    assert sorted(p.name for p in jobs_dir().iterdir()) == jobs and names() == before


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA GPUs")
def test_one_process_trains_on_the_first_visible_gpu():
    with pytest.raises(ModelError, match="CUDA_VISIBLE_DEVICES=1"):
        training_device("cuda:1")


def test_qlora_on_the_cpu_device_refused_everywhere():
    from finetune.base import check_qlora

    with pytest.raises(ModelError, match="QLoRA \\(4-bit\\) training needs a CUDA GPU"):
        check_qlora(TrainConfig(qlora=True, device="cpu"))
    check_qlora(TrainConfig(qlora=False, device="cpu"))          # plain LoRA: fine
