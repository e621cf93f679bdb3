"""End to end on a tiny config: SFT -> RM -> PPO -> DPO, each stage run in this process through
nanorm.stages, checking what each one returns and what it writes; and one run of train_sft.py from the
command line, which must give the same numbers.

The SFT and RM runs are the session's tiny checkpoints (tests/conftest.py); PPO and DPO follow here.
"""

import dataclasses
import json
import math
import os
import random
import subprocess
import sys

import pytest
import torch

from conftest import SYSTEM, Stage, ppo_flags
from nanorm import stages, world
from nanorm.checkpoint import read_jsonl
from nanorm.model import GPT, GPTConfig, ScalarHeadModel
from nanorm.prefdata import Comparison, load_comparisons
from nanorm.tokenizer import load_tokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FINGERPRINT = load_tokenizer().fingerprint


def plain(obj):
    """What a report becomes in eval.json: JSON types, NaN and infinities as null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    return obj


def check_written(stage, name, kind, step, model_cls):
    """A stage's checkpoint (kind, step, the run's whole config, tokenizer, weights that load into model_cls)
    and its eval.json (the report main returned, as JSON). Returns the checkpoint."""
    ckpt = torch.load(stage.dir / "ckpt.pt", weights_only=True)
    assert ckpt["kind"] == kind and ckpt["step"] == step
    assert ckpt["config"] == dataclasses.asdict(stages.config(name, **stage.flags))
    assert ckpt["tokenizer"]["fingerprint"] == FINGERPRINT
    model_cls(GPTConfig(**ckpt["model_config"])).load_state_dict(ckpt["state_dict"])   # every weight, every shape
    with open(stage.dir / "eval.json", encoding="utf-8") as f:
        assert json.load(f) == plain(json.loads(json.dumps(stage.report)))
    return ckpt


def win_rate_ok(summary):
    return 0.0 <= summary["win_rate_vs_sft"] <= 1.0


@pytest.fixture(scope="module")
def ppo(tiny_rm, tiny_sft):
    """train_ppo.py's main: 3 iterations of 8 rollouts, evaluated at 2 and 3, best-of-2 at the end."""
    out = tiny_sft.dir.parent / "ppo"
    flags = ppo_flags(tiny_sft, tiny_rm, out, n_iters=3, eval_interval=2, sample_interval=2, best_of=2)
    return Stage(out, flags, stages.run("ppo", **flags))


@pytest.fixture(scope="module")
def dpo(ppo, tiny_rm, tiny_sft):
    """train_dpo.py's main on the RM's rankings, 4 prompts a step, compared with the PPO policy at the end."""
    out = tiny_sft.dir.parent / "dpo"
    flags = {"sft_ckpt": str(tiny_sft.dir / "ckpt.pt"), "rm_dir": str(tiny_rm.dir),
             "ppo_ckpt": str(ppo.dir / "ckpt.pt"), "out_dir": str(out), "prompts_per_batch": 4, "warmup_steps": 2,
             "eval_interval": 3, "n_eval_prompts": 8, "n_test_prompts": 12, **SYSTEM}
    return Stage(out, flags, stages.run("dpo", **flags))


@pytest.mark.exercise("1.1", "2.1")
def test_sft_returns_and_writes(tiny_sft):
    check_written(tiny_sft, "sft", "sft", 30, GPT)
    metrics = read_jsonl(tiny_sft.dir / "metrics.jsonl")
    assert [m["step"] for m in metrics] == list(range(30))
    assert metrics[-1]["loss"] < metrics[0]["loss"]     # it learned something in 30 steps
    assert [m["step"] for m in metrics if "val_loss" in m] == [14, 29]
    report = tiny_sft.report
    assert report["val_loss"] == metrics[-1]["val_loss"]
    assert report["n_test_prompts"] == 24 and 0.0 <= report["eos_rate"] <= 1.0
    assert set(report["per_family"]) == {"arithmetic", "list", "claim", "open"}
    assert -1.0 <= report["gold_mean"] <= 1.0 and 1.0 <= report["distinct_of_5_samples"] <= 5.0


@pytest.mark.exercise("1.1", "2.1", "3.1", "3.2", "3.3", "3.4", "3.5", "4.1", "4.2", "4.3")
def test_rm_returns_and_writes(tiny_rm, tiny_sft):
    ckpt = check_written(tiny_rm, "rm", "rm", 3, ScalarHeadModel)          # 20 prompts, 8 a step
    assert ckpt["sft_config"] == torch.load(tiny_sft.dir / "ckpt.pt", weights_only=True)["config"]
    assert ckpt["reward_gain"] > 0 and math.isfinite(ckpt["reward_bias"])
    metrics = read_jsonl(tiny_rm.dir / "metrics.jsonl")
    assert [m["step"] for m in metrics] == [1, 2, 3]
    assert [m["step"] for m in metrics if "heldout_acc" in m] == [2, 3]
    train, _ = load_comparisons(tiny_rm.dir / "comparisons.jsonl")
    heldout, _ = load_comparisons(tiny_rm.dir / "eval_comparisons.jsonl")
    assert len(train) <= 20 and len(heldout) <= 10 and all(2 <= len(c.responses) <= 5 for c in train + heldout)
    report = tiny_rm.report
    assert report["n_train_prompts"] == 20 and report["n_eval_prompts"] == 10 and report["init"] == "sft"
    for key in ("accuracy", "gold_accuracy", "bayes_ceiling", "inter_labeler_agreement"):
        assert 0.0 <= report[key] <= 1.0, key
    assert report["accuracy"] == metrics[-1]["heldout_acc"]       # the same held-out pairs, the same RM
    assert set(report["accuracy_per_family"]) <= {"arithmetic", "list", "claim", "open"}
    contrasts, _ = load_comparisons(tiny_rm.dir / "contrasts.jsonl")    # correct answer vs one fact changed
    assert len(contrasts) == report["n_contrast_pairs"] <= 3 * 20
    for c in contrasts:
        p = world.Prompt.from_dict(c.meta["world_prompt"])
        assert [world.features(p, t)["correct"] for t in c.responses] == [True, False] and c.meta["contrast"]



@pytest.mark.exercise("1.1", "2.1", "3.1", "3.2", "3.3", "3.4", "3.5", "4.1", "4.2", "4.3", "5.7")
def test_rm_with_the_surprise_reader_trains_it_and_normalises_all_of_the_reward(tiny_sft, tmp_path):
    import train_rm
    from nanorm.evaluate import load_reward_model
    from nanorm.reward import SurpriseRM
    flags = {"sft_ckpt": str(tiny_sft.dir / "ckpt.pt"), "out_dir": str(tmp_path / "rm"), "n_prompts": 20,
             "n_eval_prompts": 10, "k_max": 5, "prompts_per_batch": 8, "surprise": True, **SYSTEM}
    stages.run("rm", **flags)
    ckpt = torch.load(tmp_path / "rm" / "ckpt.pt", weights_only=True)
    sft = torch.load(tiny_sft.dir / "ckpt.pt", weights_only=True)["state_dict"]
    assert torch.equal(ckpt["state_dict"]["unembed.weight"], sft["lm_head.weight"])      # frozen: the SFT model's
    assert ckpt["state_dict"]["surprise.weight"].abs().sum() > 0                          # the reader trained (from 0)
    tok = load_tokenizer(ckpt["config"]["tokenizer"])
    rm, _ = load_reward_model(str(tmp_path / "rm" / "ckpt.pt"), tok, torch.device("cpu"))
    assert isinstance(rm, SurpriseRM)
    # the gain and bias are folded into both readers: the training responses score mean 0, std 1
    train, _ = load_comparisons(tmp_path / "rm" / "comparisons.jsonl")
    r = train_rm.rewards_and_loss(rm, train, tok, 48, torch.device("cpu"), "float32")[0]
    assert r.mean().item() == pytest.approx(0.0, abs=1e-4) and r.std().item() == pytest.approx(1.0, abs=1e-4)

def test_contrast_pairs_pair_a_correct_answer_with_its_edit_ranked_by_the_same_labeler():
    import train_rm
    p = next(x for x in world.all_prompts() if x.text == "What is 4 plus 2?")
    labelers = world.make_labelers(8, seed=1337)
    ranking = Comparison(prompt=p.text, responses=["5.", "It is 6.", "6.", "It is 6. I hope this helps."],
                         ranking=[1, 2, 3, 0], labeler=3,
                         meta={"world_prompt": p.to_dict(), "finished": [True, True, False, True]})
    out = train_rm.contrast_pairs([ranking], labelers, per_ranking=2, rng=random.Random(0))[0]
    # "5." is wrong and "6." hit the length limit: the two correct, finished answers are used, in order
    assert [c.responses[0] for c in out] == ["It is 6.", "It is 6. I hope this helps."]
    for c in out:
        assert not world.features(p, c.responses[1])["correct"] and c.labeler == 3
        assert sorted(c.ranking) == [0, 1] and c.meta["contrast"] and c.meta["finished"] == [True, True]
    assert len(train_rm.contrast_pairs([ranking], labelers, per_ranking=1, rng=random.Random(0))[0]) == 1
    assert len(train_rm.contrast_pairs([ranking], labelers, per_ranking=3, rng=random.Random(0))[0]) == 3  # edited again
    # labeler 3 knows the sum: over many draws it prefers the unedited answer almost always
    many = [c for cs in train_rm.contrast_pairs([ranking] * 200, labelers, 1, random.Random(1)) for c in cs]
    assert sum(c.ranking[0] == 0 for c in many) / len(many) > 0.95


@pytest.mark.exercise("1.1", "2.1", "3.1", "3.2", "3.3", "3.4", "3.5", "4.1", "4.2", "4.3",
                      "5.1", "5.2", "5.3", "5.4", "5.5", "5.7")
def test_ppo_returns_and_writes(ppo):
    ckpt = check_written(ppo, "ppo", "ppo", 3, GPT)
    ScalarHeadModel(GPTConfig(**ckpt["model_config"])).load_state_dict(ckpt["critic_state_dict"])
    assert ckpt["beta"] == 0.2 and {"policy_opt", "critic_opt", "rng_state", "gen_state"} <= set(ckpt)
    metrics = read_jsonl(ppo.dir / "metrics.jsonl")
    assert [m["iter"] for m in metrics] == [1, 2, 3]
    assert [m["iter"] for m in metrics if "eval" in m] == [2, 3]
    assert all(m["epochs_done"] == 2 and m["beta"] == 0.2 for m in metrics)   # no early stop, fixed beta
    assert metrics[0]["kl"] == pytest.approx(0.0, abs=1e-4)                   # the first rollout is SFT's own
    report = ppo.report
    assert set(report) == {"n_test_prompts", "sft", "ppo", "best_of_2", "train_seconds", "total_seconds"}
    assert report["n_test_prompts"] == 12 and report["sft"]["n"] == 12
    assert win_rate_ok(report["ppo"]) and win_rate_ok(report["best_of_2"])
    assert report["best_of_2"]["kl"] == pytest.approx(math.log(2) - 1 / 2)   # the best-of-n KL bound
    assert report["sft"]["kl"] == 0.0


@pytest.mark.exercise("1.1", "2.1", "3.1", "3.2", "3.3", "3.4", "3.5", "4.1", "4.2", "4.3",
                      "5.1", "5.2", "5.3", "5.4", "5.5", "5.7", "8.2")
def test_dpo_returns_and_writes(dpo, ppo, tiny_rm):
    records, _ = load_comparisons(tiny_rm.dir / "comparisons.jsonl")
    n_steps = math.ceil(len(records) / 4)
    check_written(dpo, "dpo", "dpo", n_steps, GPT)
    metrics = read_jsonl(dpo.dir / "metrics.jsonl")
    assert [m["step"] for m in metrics] == list(range(n_steps + 1))
    assert [m["step"] for m in metrics if "eval" in m] == sorted({0, 3, n_steps})
    assert metrics[0]["eval"]["heldout_acc"] == 0.5 and metrics[0]["eval"]["kl"] == pytest.approx(0.0, abs=1e-4)
    assert metrics[1]["loss"] == pytest.approx(math.log(2), abs=1e-4)        # first step: policy == reference
    report = dpo.report
    assert {"implicit_reward", "rm", "sft", "dpo", "ppo", "samples"} <= set(report)
    for judge in (report["implicit_reward"], report["rm"]):
        assert 0.0 <= judge["accuracy"] <= 1.0
        assert judge["gold_accuracy"] is None or 0.0 <= judge["gold_accuracy"] <= 1.0   # None: gold ties every pair
    assert report["implicit_reward"]["n_prompts"] == len(load_comparisons(tiny_rm.dir / "eval_comparisons.jsonl")[0])
    assert win_rate_ok(report["dpo"]) and 0.0 <= report["dpo"]["win_rate_vs_ppo"] <= 1.0
    # the same test prompts and sampling streams as train_ppo.py's comparison: the same SFT and PPO rows
    assert report["sft"] == ppo.report["sft"] and report["ppo"] == ppo.report["ppo"]


@pytest.mark.exercise("1.1", "2.1")
def test_sft_from_the_command_line_gives_the_same_numbers(tiny_sft, tmp_path):
    """Same seed, same numbers: train_sft.py run as a script (output piped) equals the run in this process;
    and with its output not a terminal, progress is plain lines, never a carriage-return bar."""
    flags = {**tiny_sft.flags, "out_dir": str(tmp_path / "sft")}
    argv = [f"--{k}={v}" for k, v in flags.items()]
    result = subprocess.run([sys.executable, os.path.join(ROOT, "train_sft.py"), *argv], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"train_sft.py failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    assert "\r" not in result.stdout and "\r" not in result.stderr
    assert "sft: 3/30 (" in result.stdout and "sft: 30/30 (" in result.stdout   # a line each tenth of the way
    a = read_jsonl(tiny_sft.dir / "metrics.jsonl")
    b = read_jsonl(tmp_path / "sft" / "metrics.jsonl")
    assert a == b
    report = json.load(open(tmp_path / "sft" / "eval.json"))
    assert {**report, "train_seconds": None} == {**plain(tiny_sft.report), "train_seconds": None}


def test_bad_flag_is_a_one_line_error():
    result = subprocess.run([sys.executable, os.path.join(ROOT, "train_sft.py"), "--max_iter=3"],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].startswith("error: unknown flag --max_iter")
