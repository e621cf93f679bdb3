"""train_ppo.py's options on the session's tiny checkpoints (tests/conftest.py): the adaptive KL controller,
reward whitening, early stopping on approx KL and best-of-n, from the command line; and exact resume."""

import json
import os
import subprocess
import sys

import pytest
import torch

from conftest import ppo_flags
from nanorm import stages
from nanorm.checkpoint import read_jsonl

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def train_ppo(*args):
    return subprocess.run([sys.executable, os.path.join(ROOT, "train_ppo.py"), *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.exercise("1.1", "2.1", "3.1", "3.2", "3.3", "3.4", "3.5", "4.1", "4.2", "4.3",
                      "5.1", "5.2", "5.3", "5.4", "5.5", "5.6", "5.7")
def test_adaptive_kl_whitened_rewards_early_stop_and_best_of_n(tiny_sft, tiny_rm, tmp_path):
    flags = ppo_flags(tiny_sft, tiny_rm, tmp_path / "ppo", n_iters=3, ppo_epochs=3, eval_interval=3, best_of=4,
                      kl_ctl="adaptive", kl_horizon=100, target_kl=1e-7)
    result = train_ppo(*(f"--{k}={v}" for k, v in flags.items()), "--whiten_rewards")   # a bool flag, bare
    assert result.returncode == 0, f"train_ppo.py failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    ckpt = torch.load(tmp_path / "ppo" / "ckpt.pt", weights_only=True)
    assert ckpt["config"]["whiten_rewards"] is True and ckpt["config"]["kl_ctl"] == "adaptive"
    metrics = read_jsonl(tmp_path / "ppo" / "metrics.jsonl")
    assert [m["iter"] for m in metrics] == [1, 2, 3]
    # adaptive beta: the first rollout is SFT's own (KL 0, below target), so beta shrinks by 0.2 * 8 / 100
    assert metrics[0]["beta"] == pytest.approx(0.2 * (1 - 0.2 * 8 / 100))
    assert len({m["beta"] for m in metrics}) == 3 and ckpt["beta"] == metrics[-1]["beta"]
    assert any(m["epochs_done"] < 3 for m in metrics)          # approx KL passed 1.5 * target_kl: stopped early
    report = json.load(open(tmp_path / "ppo" / "eval.json"))
    assert {"sft", "ppo", "best_of_4"} <= set(report) and report["best_of_4"]["n"] == 12
    assert 0.0 <= report["best_of_4"]["win_rate_vs_sft"] <= 1.0


@pytest.fixture(scope="module")
def resumed(tiny_sft, tiny_rm, tmp_path_factory):
    """Three PPO runs: 3 iterations straight; 2 iterations, then --resume to 3. Adaptive KL, so beta moves."""
    d = tmp_path_factory.mktemp("resume")
    flags = lambda out, **more: ppo_flags(tiny_sft, tiny_rm, d / out, eval_interval=2, n_test_prompts=4, best_of=0,
                                          kl_ctl="adaptive", kl_horizon=100, **more)
    stages.run("ppo", **flags("straight", n_iters=3))
    stages.run("ppo", **flags("resumed", n_iters=2))
    stages.run("ppo", **flags("resumed", n_iters=3, resume=str(d / "resumed" / "ckpt.pt")))
    return d


@pytest.mark.exercise("1.1", "2.1", "3.1", "3.2", "3.3", "3.4", "3.5", "4.1", "4.2", "4.3",
                      "5.1", "5.2", "5.3", "5.4", "5.5", "5.6", "5.7")
def test_resume_gives_the_run_that_never_stopped(resumed):
    """2 iterations then --resume to 3 == 3 straight: the same metrics rows (but wall time) and the same weights,
    because the weights, both optimizers, beta and the rollouts' random streams are all restored."""
    rows = lambda out: [{k: v for k, v in m.items() if k != "seconds"}                   # wall time differs
                        for m in read_jsonl(resumed / out / "metrics.jsonl")]
    assert [m["iter"] for m in rows("resumed")] == [1, 2, 3]
    assert rows("resumed") == rows("straight")
    a, b = (torch.load(resumed / out / "ckpt.pt", weights_only=True) for out in ("straight", "resumed"))
    assert a["step"] == b["step"] == 3 and a["beta"] == b["beta"]
    for field in ("state_dict", "critic_state_dict"):
        assert a[field].keys() == b[field].keys()
        assert all(torch.equal(a[field][k], b[field][k]) for k in a[field]), field


@pytest.mark.exercise("1.1", "2.1", "3.1", "3.2", "3.3", "3.4", "3.5", "4.1", "4.2", "4.3",
                      "5.1", "5.2", "5.3", "5.4", "5.5", "5.6", "5.7")
def test_resume_to_an_iteration_already_reached_is_a_one_line_error(resumed, tiny_sft, tiny_rm):
    ckpt = resumed / "resumed" / "ckpt.pt"                                  # at iteration 3
    flags = lambda n_iters: ppo_flags(tiny_sft, tiny_rm, resumed / "again", resume=str(ckpt), n_iters=n_iters)
    result = train_ppo(*(f"--{k}={v}" for k, v in flags(3).items()))
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [f"error: --n_iters=3: {ckpt} is already at iteration 3; "
                                                  "ask for more to continue it"]
    with pytest.raises(SystemExit, match=r"^error: --n_iters=2: .* is already at iteration 3"):
        stages.run("ppo", **flags(2))
    assert not (resumed / "again").exists()                                 # nothing written


@pytest.mark.exercise("1.1", "2.1", "3.1", "3.2", "3.3", "3.4", "3.5", "4.1", "4.2", "4.3",
                      "5.1", "5.2", "5.3", "5.4", "5.5", "5.6", "5.7")
def test_an_ensemble_of_one_rm_twice_is_that_rm(resumed, tiny_sft, tiny_rm):
    """--rm_ckpt=a,a under uwo: both members agree everywhere (variance 0), so the reward, the critic's start
    and every number of the run are the single RM's: the same metrics rows and weights as "straight"."""
    rm = str(tiny_rm.dir / "ckpt.pt")
    flags = ppo_flags(tiny_sft, tiny_rm, resumed / "ensemble", eval_interval=2, n_test_prompts=4, best_of=0,
                      kl_ctl="adaptive", kl_horizon=100, n_iters=3)
    stages.run("ppo", **{**flags, "rm_ckpt": f"{rm},{rm}", "rm_objective": "uwo", "uwo_lambda": 3.0})
    rows = lambda out: [{k: v for k, v in m.items() if k != "seconds"} for m in read_jsonl(resumed / out / "metrics.jsonl")]
    assert rows("ensemble") == rows("straight")
    a, b = (torch.load(resumed / out / "ckpt.pt", weights_only=True) for out in ("straight", "ensemble"))
    assert all(torch.equal(a["critic_state_dict"][k], b["critic_state_dict"][k]) for k in a["critic_state_dict"])
    result = train_ppo(*(f"--{k}={v}" for k, v in {**flags, "rm_ckpt": f"{rm},"}.items()))
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [f"error: --rm_ckpt={rm},: expected checkpoint paths, comma-separated"]
