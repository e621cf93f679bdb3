"""The real-data path end to end, tiny and on CPU: tokenizer -> train_sft.py --data -> train_rm.py --data.

Reads the human preference fixtures in ../shared/realdata (HH-RLHF helpful, OpenAssistant trees) where
they are, never copies them into the repo, and skips when they are absent. Only slices of them are
used, written to tmp_path, so the whole file runs in well under a minute.

A student copy (python -m nanorm.course) lives elsewhere, so there it looks beside the tree the
copy was made from: the graded tests below must fail in the copy, not be skipped for want of data.
"""

import json
import os
import subprocess
import sys

import pytest
import torch

from nanorm.course.assignments import STAMP
from nanorm.checkpoint import read_jsonl
from nanorm.model import GPT, GPTConfig, ScalarHeadModel
from nanorm.prefdata import load_comparisons, split_holdout
from nanorm.tokenizer import load_tokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REALDATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "realdata")
if not os.path.isdir(REALDATA) and os.path.isfile(os.path.join(ROOT, STAMP)):   # a student copy
    REALDATA = os.path.join(json.load(open(os.path.join(ROOT, STAMP)))["source"], "..", "shared", "realdata")
HELPFUL = os.path.join(REALDATA, "hh_rlhf_helpful_base_test.jsonl")
OASST = os.path.join(REALDATA, "oasst_en_100_tree.jsonl")
TINY_MODEL = ["--n_layer=1", "--n_head=2", "--n_embd=32"]
FIT = ["--block_size=64", "--max_response_tokens=24"]   # the RM passes --max_response_tokens too

pytestmark = pytest.mark.skipif(not os.path.isdir(REALDATA), reason="shared/realdata not beside the repo")


def run(args, ok=True):
    result = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
    if ok:
        assert result.returncode == 0, f"{args[:2]} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def script(name, *args):
    return [os.path.join(ROOT, name), "--device=cpu", "--threads=1", *args]


def head(src, dst, n):
    """The first n lines of a fixture, in tmp_path."""
    with open(src, encoding="utf-8") as f, open(dst, "w", encoding="utf-8") as g:
        for _ in range(n):
            g.write(f.readline())
    return str(dst)


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    """A small BPE tokenizer learned from a slice of HH helpful, with the project's own tool."""
    d = tmp_path_factory.mktemp("realdata")
    hh = head(HELPFUL, d / "hh.jsonl", 160)
    run(["-m", "nanorm.tokenizer", f"--data={hh}", f"--out={d}/hh.tiktoken", "--vocab_size=400"])
    return d


@pytest.fixture(scope="module")
def sft(tok):
    d = tok
    run(script("train_sft.py", f"--data={d}/hh.jsonl", f"--tokenizer={d}/hh.tiktoken", f"--out_dir={d}/sft",
               "--max_iters=8", "--batch_size=8", "--eval_interval=4", "--n_eval_prompts=6", *FIT, *TINY_MODEL))
    return d


@pytest.fixture(scope="module")
def rm(sft):
    d = sft
    out = run(script("train_rm.py", f"--data={d}/hh.jsonl", f"--sft_ckpt={d}/sft/ckpt.pt",
                     f"--tokenizer={d}/hh.tiktoken", f"--out_dir={d}/rm", "--max_response_tokens=24",
                     "--n_prompts=48", "--eval_interval=3"))
    return d, out.stdout


def test_learned_tokenizer_round_trips_real_text(tok):
    t = load_tokenizer(str(tok / "hh.tiktoken"))
    assert t.vocab_size == 400 and (t.eos_id, t.pad_id) == (398, 399)
    with open(tok / "hh.jsonl", encoding="utf-8") as f:
        texts = [s for line in f for s in json.loads(line).values()]
    assert any(ord(c) > 127 for s in texts for c in s)            # curly quotes and the like are in the slice
    for s in texts + ["naïve café — “quoted” 😀 中文 \x00\t<|endoftext|>"]:
        assert t.decode(t.encode(s)) == s                          # byte-level BPE: nothing is lost
        assert t.eos_id not in t.encode(s)                         # typed special-token text is plain text


@pytest.mark.exercise("1.1", "2.1")
def test_sft_on_real_data(sft):
    t = load_tokenizer(str(sft / "hh.tiktoken"))
    ckpt = torch.load(sft / "sft" / "ckpt.pt", weights_only=True)
    assert ckpt["kind"] == "sft" and ckpt["step"] == 8
    assert ckpt["tokenizer"]["fingerprint"] == t.fingerprint
    assert ckpt["config"]["data"].endswith("hh.jsonl") and ckpt["model_config"]["block_size"] == 64
    GPT(GPTConfig(**ckpt["model_config"])).load_state_dict(ckpt["state_dict"])
    metrics = read_jsonl(sft / "sft" / "metrics.jsonl")
    assert [m["step"] for m in metrics] == list(range(8)) and "val_loss" in metrics[-1]
    report = json.load(open(sft / "sft" / "eval.json"))
    assert report["n_test_prompts"] == 6 and 0.0 <= report["eos_rate"] <= 1.0
    assert report["gold"] is None and report["per_family"] is None and "gold_mean" not in report   # no gold
    assert len(report["samples"]) == 6 and all("gold" not in s for s in report["samples"])


@pytest.mark.exercise("1.1", "2.1", "3.1", "3.2", "3.3", "3.4", "3.5", "4.1", "4.2")
def test_rm_on_real_data(rm):
    d, stdout = rm
    ckpt = torch.load(d / "rm" / "ckpt.pt", weights_only=True)
    assert ckpt["kind"] == "rm" and ckpt["config"]["data"].endswith("hh.jsonl")
    assert ckpt["tokenizer"]["fingerprint"] == load_tokenizer(str(d / "hh.tiktoken")).fingerprint
    ScalarHeadModel(GPTConfig(**ckpt["model_config"])).load_state_dict(ckpt["state_dict"])
    report = json.load(open(d / "rm" / "eval.json"))
    records, _ = load_comparisons(str(d / "hh.jsonl"))
    _, held = split_holdout(records, 0.1, seed=1337)                  # the defaults of both scripts
    assert report["n_train_prompts"] == 48 and report["n_eval_prompts"] == report["n_eval_pairs"] == len(held)
    for key in ("accuracy", "ece", "length_baseline_accuracy"):
        assert 0.0 <= report[key] <= 1.0, key
    assert "gold_accuracy" not in report and "bayes_ceiling" not in report
    assert "baseline: the longer response wins" in stdout and "calibration error (ECE)" in stdout
    held_out = read_jsonl(d / "rm" / "eval_comparisons.jsonl")
    assert [r["prompt"] for r in held_out] == [c.prompt for c in held]
    # SFT held out the same records: its evaluation prompts are the RM's held-out prompts (no leak)
    sft_prompts = [s["prompt"] for s in json.load(open(d / "sft" / "eval.json"))["samples"]]
    assert sft_prompts == [c.prompt for c in held][:len(sft_prompts)]


@pytest.mark.exercise("1.1", "2.1", "3.1", "3.2", "3.3", "3.4", "3.5", "4.1", "4.2")
def test_malformed_jsonl_is_a_one_line_error_and_keeps_the_old_checkpoint(rm, tmp_path):
    d, _ = rm
    bad = tmp_path / "bad.jsonl"
    lines = open(d / "hh.jsonl", encoding="utf-8").readlines()[:3]
    bad.write_text("".join(lines) + json.dumps({"chosen": "\n\nHuman: hi\n\nAssistant: hello"}) + "\n",
                   encoding="utf-8")                                  # line 4 has no 'rejected'
    before = {p.name: p.read_bytes() for p in (d / "rm").iterdir()}
    result = run(script("train_rm.py", f"--data={bad}", f"--sft_ckpt={d}/sft/ckpt.pt",
                        f"--tokenizer={d}/hh.tiktoken", f"--out_dir={d}/rm", "--max_response_tokens=24"), ok=False)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: {bad}:4: ") and "'rejected'" in last, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    after = {p.name: p.read_bytes() for p in (d / "rm").iterdir()}
    assert after == before                                            # nothing written, nothing lost


@pytest.mark.exercise("1.1", "2.1", "3.1", "3.2", "3.3", "3.4", "3.5", "4.1", "4.2")
def test_rm_on_openassistant_rankings(sft, tmp_path):
    d = sft
    oasst = head(OASST, tmp_path / "oasst.jsonl", 12)
    run(script("train_rm.py", f"--data={oasst}", f"--sft_ckpt={d}/sft/ckpt.pt", f"--tokenizer={d}/hh.tiktoken",
               f"--out_dir={tmp_path}/rm", "--max_response_tokens=24", "--max_response_chars=5000",
               "--eval_frac=0.25", "--prompts_per_batch=4"))
    report = json.load(open(tmp_path / "rm" / "eval.json"))
    assert report["n_train_pairs"] > report["n_train_prompts"]      # rankings of K > 2 replies: C(K,2) pairs each
    assert report["n_eval_prompts"] >= 1 and 0.0 <= report["accuracy"] <= 1.0 and 0.0 <= report["ece"] <= 1.0
