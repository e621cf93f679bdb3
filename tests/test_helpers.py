"""The helpers every stage shares, against hand-worked values: one padding (nanorm/model.py::pad), one encoding
rule (nanorm/data.py::encode_example), one LR schedule (nanorm/training.py::lr_at), atomic writes
(nanorm/checkpoint.py::atomic_open), progress lines (nanorm/training.py::progress) and each script's --help."""

import dataclasses
import inspect
import json
import math
import os
import re
import subprocess
import sys

import pytest
import torch
from tqdm import tqdm

from nanorm import stages
from nanorm.checkpoint import atomic_open, write_json
from nanorm.config import parse_config
from nanorm.data import encode_example
from nanorm.model import pad
from nanorm.tokenizer import load_tokenizer
from nanorm.training import lr_at, progress

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOK = load_tokenizer()
T, F = True, False


# ----------------------------------------------------------------------------------------------------
# pad

def test_pad_right_and_left():
    seqs = [[5, 6, 7], [8], []]
    idx, mask = pad(seqs, pad_id=0)
    assert torch.equal(idx, torch.tensor([[5, 6, 7], [8, 0, 0], [0, 0, 0]]))
    assert torch.equal(mask, torch.tensor([[T, T, T], [T, F, F], [F, F, F]]))
    idx, mask = pad(seqs, pad_id=0, left=True)
    assert torch.equal(idx, torch.tensor([[5, 6, 7], [0, 0, 8], [0, 0, 0]]))
    assert torch.equal(mask, torch.tensor([[T, T, T], [F, F, T], [F, F, F]]))
    assert idx.dtype == torch.long and mask.dtype == torch.bool
    idx, mask = pad([[]], pad_id=3)                      # nothing at all: one column of padding
    assert torch.equal(idx, torch.tensor([[3]])) and not mask.any()


# ----------------------------------------------------------------------------------------------------
# encode_example, on "What is 4 plus 2?" -> "It is 6.", read as the tokens' text

PROMPT = ["User", ":", " ", "What", " is", " 4", " plus", " 2", "?", "\n", "Assistant", ":"]
RESPONSE = [" It", " is", " 6", "."]


def pieces(ids):
    return [("<EOS>" if i == TOK.eos_id else TOK.decode([i])) for i in ids]


def encode(block_size=96, max_response_tokens=48, finished=True):
    prompt, response = encode_example(TOK, "What is 4 plus 2?", "It is 6.", block_size, max_response_tokens, finished)
    return pieces(prompt), pieces(response)


def test_encode_example_eos_only_when_finished():
    assert encode() == (PROMPT, RESPONSE + ["<EOS>"])
    assert encode(finished=False) == (PROMPT, RESPONSE)           # a sample that hit the limit: no EOS


def test_encode_example_a_cut_response_loses_its_eos():
    assert encode(max_response_tokens=5) == (PROMPT, RESPONSE + ["<EOS>"])   # just fits
    assert encode(max_response_tokens=4) == (PROMPT, RESPONSE)               # the first 4 tokens, no EOS
    assert encode(max_response_tokens=2) == (PROMPT, [" It", " is"])


def test_encode_example_cuts_the_prompt_on_the_left_to_fit():
    assert encode(block_size=9) == (["?", "\n", "Assistant", ":"], RESPONSE + ["<EOS>"])   # 9 - 5 = 4 left
    assert encode(block_size=17) == (PROMPT, RESPONSE + ["<EOS>"])                         # 12 + 5 fit exactly
    assert encode(block_size=6, max_response_tokens=3) == (["\n", "Assistant", ":"], [" It", " is", " 6"])
    with pytest.raises(ValueError, match="leaves no room for a prompt"):
        encode(block_size=5)


# ----------------------------------------------------------------------------------------------------
# lr_at: peak 1.0, min 0.1, 4 warm-up steps, 14 steps in all (steps 0..13)

@pytest.mark.parametrize("step, expected", [
    (0, 0.25),                                          # warm-up starts at lr / warmup, not at 0
    (2, 0.75),
    (3, 1.0),                                           # warm-up ends at the peak
    (4, 1.0),                                           # the cosine starts at the peak: progress 0
    (9, 0.55),                                          # middle: progress 5/10, min + (lr - min) / 2
    (13, 0.1 + 0.45 * (1 + math.cos(0.9 * math.pi))),   # the last step: progress 9/10, 0.12202
    (14, 0.1),                                          # progress 1: min_lr, one step past the last one
    (40, 0.1),                                          # and it stays there
])
def test_lr_at_hand_computed(step, expected):
    assert lr_at(step, 1.0, 0.1, 4, 14) == pytest.approx(expected, abs=1e-12)


def test_lr_at_without_warmup_starts_at_the_peak():
    assert lr_at(0, 2e-3, 2e-4, 0, 10) == 2e-3 and lr_at(5, 2e-3, 2e-4, 0, 10) == pytest.approx(1.1e-3)


# ----------------------------------------------------------------------------------------------------
# atomic_open: the whole new file, or the old one untouched

@pytest.mark.parametrize("mode, old, new", [("w", "old text", "new text"), ("wb", b"old bytes", b"new bytes")])
@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_atomic_open_keeps_the_old_file_when_the_block_raises(tmp_path, mode, old, new, error):
    path = str(tmp_path / "sub" / "file")
    with atomic_open(path, mode) as f:                         # creates the folder, writes, renames
        f.write(old)
    with pytest.raises(error):
        with atomic_open(path, mode) as f:
            f.write(new[:3])                                   # half written when it fails
            raise error()
    with open(path, "rb") as f:
        assert f.read() == (old if "b" in mode else old.encode())
    assert os.listdir(tmp_path / "sub") == ["file"]            # no PATH.tmp left behind
    with atomic_open(path, mode) as f:
        f.write(new)
    with open(path, "rb") as f:
        assert f.read() == (new if "b" in mode else new.encode())


def test_atomic_open_on_a_new_path_leaves_nothing_when_the_block_raises(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_open(str(tmp_path / "new.json")) as f:
            f.write("{")
            raise RuntimeError
    assert os.listdir(tmp_path) == []


def test_write_json_writes_nan_and_infinity_as_null(tmp_path):
    write_json(str(tmp_path / "eval.json"), {"a": float("nan"), "b": [1.5, float("-inf")], "c": {"d": (2, "x")}})
    assert json.load(open(tmp_path / "eval.json")) == {"a": None, "b": [1.5, None], "c": {"d": [2, "x"]}}


# ----------------------------------------------------------------------------------------------------
# progress: a tqdm bar on a terminal, plain lines elsewhere

def test_progress_prints_plain_lines_when_stderr_is_not_a_terminal(capsys):
    bar = progress(20, "sft")                                  # under capsys stderr is not a terminal
    for i in range(20):
        bar.update(1)
        bar.set_postfix(loss=f"{20 - i:.1f}")
    bar.close()
    out, err = capsys.readouterr()
    assert "\r" not in out and "\r" not in err and err == ""
    lines = out.splitlines()
    assert [line.split(" (")[0] for line in lines] == [f"sft: {n}/20" for n in range(2, 21, 2)]   # each tenth
    assert re.fullmatch(r"sft: 20/20 \(\d+s\) loss=2\.0", lines[-1])


def test_progress_is_a_tqdm_bar_on_a_terminal(capsys, monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    bar = progress(3, "rm")
    assert isinstance(bar, tqdm)
    bar.update(3)
    bar.close()
    assert "\r" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------------
# --help: the script's purpose (its docstring's first line), then every flag, its default and its comment

HELP = {   # one field's comment per script, continuation lines included where it has them
    "sft": ("--balance_families=True", "every family gets the same number of demonstrations (arithmetic has the "
                                       "fewest prompts but the facts that are hardest to learn)"),
    "rm": ("--rounds=1", "rankings per training prompt, each of fresh samples by a freshly drawn labeler (more "
                         "comparisons without more prompts)"),
    "ppo": ("--target_kl=0.0", "stop an iteration's epochs early when approx KL exceeds this (0 = off)"),
    "dpo": ("--rm_dir='out/rm'", "train_rm.py's out_dir: comparisons.jsonl (training data), eval_comparisons.jsonl "
                                 "(held-out), ckpt.pt (proxy)"),
}


@pytest.mark.parametrize("name", sorted(HELP))
def test_help_prints_the_purpose_and_every_field_with_its_comment(name, capsys):
    module = stages.module(name)
    cls = getattr(module, stages.CONFIGS[name])
    with pytest.raises(SystemExit) as e:
        parse_config(cls, ["--seed=3", "--help"])               # --help wins over the other flags
    assert e.value.code == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("usage: ") and lines[1] == module.__doc__.strip().splitlines()[0]
    rows = {line.split()[0]: line for line in lines[3:]}
    source = inspect.getsource(cls)
    for f in dataclasses.fields(cls):
        flag = f"--{f.name}={f.default!r}"
        assert flag in rows, flag
        comment = re.search(rf"^\s+{f.name}\s*:[^#\n]*#\s?(.*)$", source, re.M)   # the comment on its own line
        assert rows[flag].split(None, 1)[1].startswith(f"({f.type if isinstance(f.type, str) else f.type.__name__})")
        if comment:
            assert comment.group(1).strip() in rows[flag], flag
    flag, comment = HELP[name]
    assert rows[flag].endswith(") " + comment)


def test_help_from_the_command_line():
    result = subprocess.run([sys.executable, os.path.join(ROOT, "train_rm.py"), "--help"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[:2] == ["usage: train_rm.py [--key=value ...]", "Stage 2 of 3: the reward model (RM)."]
    assert any(line.split()[:2] == ["--rounds=1", "(int)"] and "rankings per training prompt" in line for line in lines)
