"""The training loop under DDP (2 CPU processes, gloo) and after a kill, as real processes."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("_train_tiny.py")
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _env(**extra):
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "OMP_NUM_THREADS": "1"}
    env.pop("ACCELERATE_USE_CPU", None)
    return {**env, **extra}


def _run(out, *args, **env):
    return subprocess.run([sys.executable, str(SCRIPT), "--out", str(out), *args], env=_env(**env), check=False,
                          capture_output=True, text=True, timeout=300)


def test_ddp_on_two_cpu_processes_trains_one_model(tmp_path):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(SCRIPT),
               "--out", str(tmp_path)]
    done = subprocess.run(command, env=_env(ACCELERATE_USE_CPU="1"), capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    assert {r["distributed_type"] for r in ranks} == {"DistributedType.MULTI_CPU"}
    assert ranks[0]["weights"] == ranks[1]["weights"]  # gradients were all-reduced: one model on both ranks
    for stage in ("stage1", "stage2"):
        # each rank saw half of every epoch; the logged averages are over all 48 rows, identical on both ranks
        assert [e["train_samples"] for e in ranks[0][stage]] == [48.0] * len(ranks[0][stage])
        for key in ("loss_total", "rare_class_recall"):
            assert [e[key] for e in ranks[0][stage]] == [e[key] for e in ranks[1][stage]], (stage, key)
    assert {"loss_feature", "loss_attention", "probe_val_accuracy"} <= ranks[0]["stage1"][0].keys()


def test_a_killed_run_resumes_from_its_last_epoch_checkpoint(tmp_path):
    checkpoints = tmp_path / "checkpoints"
    killed_out = tmp_path / "killed"
    killed_out.mkdir()
    process = subprocess.Popen([sys.executable, str(SCRIPT), "--out", str(killed_out), "--checkpoints", str(checkpoints),
                                "--hang-at-stage2-epoch", "2"], env=_env(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not (killed_out / "hanging").exists():
        assert process.poll() is None, process.stderr.read()[-3000:]
        assert time.monotonic() < deadline, "the training run never reached stage 2 epoch 2"
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert not (killed_out / "rank0.json").exists()
    assert sorted(p.name for p in (checkpoints / "stage2").glob("epoch-*")) == ["epoch-0002"]

    resumed = _run(tmp_path / "resumed", "--checkpoints", str(checkpoints))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    result = json.loads((tmp_path / "resumed" / "rank0.json").read_text())
    assert (result["stage1_resumed_from"], result["stage2_resumed_from"]) == (2, 2)  # stage 1 had finished
    assert [e["epoch"] for e in result["stage2"]] == [1, 2, 3]
    assert result["stage2_stop_reason"] == "epoch budget reached (3 epochs)"

    straight = _run(tmp_path / "straight")
    assert straight.returncode == 0, straight.stderr[-3000:]
    uninterrupted = json.loads((tmp_path / "straight" / "rank0.json").read_text())
    # model, optimiser, scheduler, RNG and shuffle order were restored: the same weights as a run never killed
    assert result["weights"] == uninterrupted["weights"]
    assert [e["loss_total"] for e in result["stage2"]] == pytest.approx([e["loss_total"] for e in uninterrupted["stage2"]])
