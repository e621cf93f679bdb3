"""End-to-end smoke runs of the three scripts on a tiny config, checking what each one writes."""

import json
import os
import subprocess
import sys

import pytest
import torch

from nanorm.checkpoint import read_jsonl
from nanorm.model import GPT, GPTConfig, ScalarHeadModel
from nanorm.tokenizer import load_tokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_MODEL = ["--n_layer=1", "--n_head=2", "--n_embd=32"]


def run(script, *args):
    result = subprocess.run([sys.executable, os.path.join(ROOT, script), "--device=cpu", "--threads=1", *args],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{script} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    """One tiny SFT -> RM -> PPO chain, shared by the tests below."""
    d = tmp_path_factory.mktemp("pipeline")
    run("train_sft.py", f"--out_dir={d}/sft", "--max_iters=30", "--n_train_prompts=200", "--n_eval_prompts=24",
        "--eval_interval=15", *TINY_MODEL)
    return d


@pytest.mark.exercise("1.1", "2.1")
def test_sft_writes_a_loadable_checkpoint(out):
    ckpt = torch.load(out / "sft" / "ckpt.pt", weights_only=True)
    assert ckpt["kind"] == "sft" and ckpt["step"] == 30
    assert ckpt["config"]["n_layer"] == 1 and ckpt["config"]["max_iters"] == 30
    assert ckpt["tokenizer"]["fingerprint"] == load_tokenizer().fingerprint
    model = GPT(GPTConfig(**ckpt["model_config"]))
    model.load_state_dict(ckpt["state_dict"])          # every weight present, every shape right
    metrics = read_jsonl(out / "sft" / "metrics.jsonl")
    assert [m["step"] for m in metrics] == list(range(30))
    assert metrics[-1]["loss"] < metrics[0]["loss"]     # it learned something in 30 steps
    assert "val_loss" in metrics[14] and "val_loss" in metrics[29]
    report = json.load(open(out / "sft" / "eval.json"))
    assert report["n_test_prompts"] == 24 and 0.0 <= report["eos_rate"] <= 1.0
    assert set(report["per_family"]) == {"arithmetic", "list", "claim", "open"}
    assert -1.0 <= report["gold_mean"] <= 1.0


@pytest.mark.exercise("1.1", "2.1")
def test_sft_same_seed_same_numbers(out, tmp_path):
    run("train_sft.py", f"--out_dir={tmp_path}/sft", "--max_iters=30", "--n_train_prompts=200",
        "--n_eval_prompts=24", "--eval_interval=15", *TINY_MODEL)
    a = read_jsonl(out / "sft" / "metrics.jsonl")
    b = read_jsonl(tmp_path / "sft" / "metrics.jsonl")
    assert [m["loss"] for m in a] == [m["loss"] for m in b]


def test_bad_flag_is_a_one_line_error():
    result = subprocess.run([sys.executable, os.path.join(ROOT, "train_sft.py"), "--max_iter=3"],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].startswith("error: unknown flag --max_iter")
