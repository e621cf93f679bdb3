"""Bad input, faults and interruptions (issue 15): a one-line error every time, and an out_dir that never lies.

A tiny good SFT -> RM -> PPO -> DPO chain is made once (module fixture) and the bytes of every file it
wrote are kept. Then each bad case runs against the SAME out_dirs and must: exit non-zero, print exactly
one `error:` (or `interrupted:`) line on stderr (`warning:` lines aside), no traceback, and leave every
file of the good runs byte-identical, with nothing added beside them.

Most cases run the scripts' own last line, `cli(main, Config)`, in this process: the same code as
`python train_x.py ...` without paying for a fresh interpreter each time. What needs a real process runs
one: Ctrl-C (SIGINT), SIGKILL, and `python -O`. Faults the machine cannot produce on demand are
simulated, and the test names say how: disk full is a real ENOSPC from /dev/full (a link planted where
the checkpoint's temporary file goes); read-only is a patched open() (root ignores file modes).
"""

import contextlib
import errno
import io
import json
import os
import signal
import subprocess
import sys

import pytest
import torch

from nanorm import stages
from nanorm.checkpoint import read_jsonl
from nanorm.config import cli, parse_config
from nanorm.model import GPT, GPTConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SYSTEM = ["--device=cpu", "--threads=1"]
TINY = [*SYSTEM, "--n_layer=1", "--n_head=2", "--n_embd=32"]
SFT = [*TINY, "--max_iters=4", "--n_train_prompts=40", "--demos_per_prompt=1", "--n_eval_prompts=4",
       "--eval_interval=2", "--batch_size=8"]
PPO = [*SYSTEM, "--batch_size=8", "--minibatch_size=4", "--ppo_epochs=1", "--eval_interval=1",
       "--n_eval_prompts=4", "--n_test_prompts=4", "--best_of=0", "--max_response_tokens=16"]


# the good chain runs every stage, so every test that uses it runs every exercise of the course (in a student
# copy, where they are stubbed, these tests fail with the first one the chain reaches)
CHAIN = pytest.mark.exercise("1.1", "2.1", "3.1", "3.2", "3.3", "3.4", "3.5", "4.1", "4.2", "4.3",
                             "5.1", "5.2", "5.3", "5.4", "5.5", "5.6", "5.7", "8.1", "8.2")


def cli_run(stage, *flags):
    """cli(main, Config) of train_<stage>.py in this process -> (exit status, stderr lines as a shell shows them)."""
    module = stages.module(stage)
    err = io.StringIO()
    code = 0
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        try:
            cli(module.main, getattr(module, stages.CONFIGS[stage]), list(flags))
        except SystemExit as e:   # anything else escapes: a traceback, and the test fails
            code = e.code
    lines = err.getvalue().splitlines()
    if isinstance(code, str):     # SystemExit("error: ...") prints its message and exits 1
        lines, code = lines + [code], 1
    return code, lines


def files_of(root):
    """{relative path: bytes} of every file below root."""
    out = {}
    for d, _, names in os.walk(root):
        for name in names:
            path = os.path.join(d, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, root)] = f.read()
    return out


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """The good runs: out/{sft,rm,ppo,dpo}, and their files' bytes."""
    threads = torch.get_num_threads()
    d = tmp_path_factory.mktemp("faults")
    out = d / "out"
    chain = [("sft", *SFT, f"--out_dir={out}/sft"),
             ("rm", *SYSTEM, f"--sft_ckpt={out}/sft/ckpt.pt", f"--out_dir={out}/rm", "--n_prompts=12",
              "--n_eval_prompts=6", "--k_max=4", "--eval_interval=2", "--prompts_per_batch=4"),
             ("ppo", *PPO, f"--sft_ckpt={out}/sft/ckpt.pt", f"--rm_ckpt={out}/rm/ckpt.pt", f"--out_dir={out}/ppo",
              "--n_iters=2"),
             ("dpo", *SYSTEM, f"--sft_ckpt={out}/sft/ckpt.pt", f"--rm_dir={out}/rm", f"--ppo_ckpt={out}/ppo/ckpt.pt",
              f"--out_dir={out}/dpo", "--prompts_per_batch=4", "--warmup_steps=1", "--eval_interval=100",
              "--n_eval_prompts=4", "--n_test_prompts=4", "--max_response_tokens=16")]
    for stage, *flags in chain:
        code, err = cli_run(stage, *flags)
        assert code == 0, f"the good {stage} run failed: {err}"
    yield {"dir": d, "out": out, "files": files_of(out), "flags": {stage: flags for stage, *flags in chain}}
    torch.set_num_threads(threads)


def flags_of(good, stage, *changes):
    """The good run's flags of a stage with some changed (same out_dir unless changed)."""
    keys = {c.split("=", 1)[0] for c in changes}
    return [f for f in good["flags"][stage] if f.split("=", 1)[0] not in keys] + list(changes)


def assert_failed_cleanly(good, code, err, expect, first="error:"):
    assert code != 0, f"exit status 0: {err}"
    assert not any("Traceback" in line for line in err), "\n".join(err)
    errors = [line for line in err if not line.startswith("warning:")]
    assert len(errors) == 1 and errors[0].startswith(first), "\n".join(err)
    assert expect in errors[0], errors[0]
    assert files_of(good["out"]) == good["files"], "the good runs' files changed"


# ----------------------------------------------------------------------------------------------------
# Flags: every rule at parse time, one line each, no assert (so also under python -O)

@pytest.mark.parametrize("stage, argv, message", [
    ("sft", ["--max_iters=-5"], "--max_iters=-5: must be at least 0"),
    ("sft", ["--batch_size=0"], "--batch_size=0: must be at least 1"),
    ("sft", ["--eval_frac=0"], "--eval_frac=0.0: must be in (0, 1)"),
    ("sft", ["--eval_frac=1.5"], "--eval_frac=1.5: must be in (0, 1)"),
    ("sft", ["--n_head=3", "--n_embd=64"], "--n_embd=64: must be divisible by --n_head=3"),
    ("sft", ["--lr=nan"], "--lr=nan: must be a finite number"),
    ("sft", ["--lr=inf"], "--lr=inf: must be a finite number"),
    ("sft", ["--threads=-1"], "--threads=-1: must be at least 0"),
    ("sft", ["--temperature=0"], "--temperature=0.0: must be greater than 0"),
    ("sft", ["--max_response_tokens=96"], "must leave room for a prompt"),
    ("sft", ["--dropout=1"], "--dropout=1.0: must be in [0, 1)"),
    ("sft", ["--min_lr=1"], "--min_lr=1.0: must be at most --lr"),
    ("sft", ["--n_train_prompts=99999"], "the world's train split has only"),
    ("sft", ["--out_dir="], "--out_dir=: must name a directory"),
    ("sft", ["--device=tpu"], "--device=tpu: expected auto, cpu"),
    ("sft", ["--dtype=fp16"], "--dtype=fp16: expected float32 or bfloat16"),
    ("sft", ["--seed=-1"], "--seed=-1: must be in [0, 2**32)"),
    ("rm", ["--k_min=1"], "--k_min=1: must be at least 2"),
    ("rm", ["--k_min=5", "--k_max=4"], "--k_max=4: must be at least 5"),
    ("rm", ["--prompts_per_batch=0"], "--prompts_per_batch=0: must be at least 1"),
    ("rm", ["--init=pretrained"], "--init=pretrained: expected sft or random"),
    ("rm", ["--n_eval_prompts=100000"], "the world's val split has only"),
    ("rm", ["--grad_clip=0"], "--grad_clip=0.0: must be greater than 0"),
    ("ppo", ["--minibatch_size=0"], "--minibatch_size=0: must be at least 1"),
    ("ppo", ["--batch_size=10", "--minibatch_size=3"], "--minibatch_size=3: must divide --batch_size=10"),
    ("ppo", ["--kl_ctl=pid"], "--kl_ctl=pid: expected fixed or adaptive"),
    ("ppo", ["--gamma=1.5"], "--gamma=1.5: must be in [0, 1]"),
    ("ppo", ["--beta=-1"], "--beta=-1.0: must be at least 0"),
    ("ppo", ["--batch_size=5000", "--minibatch_size=8"], "the world's train split has only"),
    ("dpo", ["--beta=-1"], "--beta=-1.0: must be greater than 0"),
    ("dpo", ["--beta=0"], "--beta=0.0: must be greater than 0"),
    ("dpo", ["--prompts_per_batch=0"], "--prompts_per_batch=0: must be at least 1"),
    ("dpo", ["--temperature=0"], "--temperature=0.0: must be greater than 0"),
])
def test_bad_flag_is_a_one_line_error(stage, argv, message):
    with pytest.raises(SystemExit) as e:
        parse_config(getattr(stages.module(stage), stages.CONFIGS[stage]), argv)
    assert str(e.value).startswith("error: --") and "\n" not in str(e.value)
    assert message in str(e.value)


@pytest.mark.parametrize("stage, argv, message", [
    ("sft", ["--max_iters=0"], "warning: --max_iters=0: nothing is trained"),
    ("sft", ["--lr=0", "--min_lr=0"], "warning: --lr=0.0: nothing is trained"),
    ("rm", ["--epochs=0"], "warning: --epochs=0: nothing is trained"),
    ("ppo", ["--n_iters=0"], "warning: --n_iters=0: nothing is trained"),
    ("ppo", ["--lr=0"], "warning: --lr=0.0: the policy is not trained"),
    ("dpo", ["--epochs=0"], "warning: --epochs=0: nothing is trained"),
])
def test_a_run_that_trains_nothing_says_so(stage, argv, message, capsys):
    parse_config(getattr(stages.module(stage), stages.CONFIGS[stage]), argv)   # allowed, and said in one line
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(message)


@CHAIN
def test_max_iters_0_runs_and_saves_the_initial_model(good):
    code, err = cli_run("sft", *SFT, "--max_iters=0", f"--out_dir={good['dir']}/untrained")
    assert code == 0 and len(err) == 1 and err[0].startswith("warning: --max_iters=0")
    assert torch.load(good["dir"] / "untrained" / "ckpt.pt", weights_only=True)["step"] == 0


def test_bad_flag_under_python_O_is_still_an_error(tmp_path):
    """The rules are not asserts: `python -O` (which drops asserts) refuses the same flags."""
    result = subprocess.run([sys.executable, "-O", os.path.join(ROOT, "train_ppo.py"), "--batch_size=10",
                             "--minibatch_size=3"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip() == "error: --minibatch_size=3: must divide --batch_size=10"


# ----------------------------------------------------------------------------------------------------
# Bad data files

@CHAIN
def test_rm_on_an_empty_file(good):
    empty = good["dir"] / "empty.jsonl"
    empty.write_text("")
    assert_failed_cleanly(good, *cli_run("rm", *flags_of(good, "rm", f"--data={empty}")), "no usable comparisons")


@CHAIN
def test_rm_on_a_file_whose_records_are_all_skipped(good):
    skipped = good["dir"] / "skipped.jsonl"
    skipped.write_text("".join(json.dumps({"prompt": f"q{i}", "chosen": "same", "rejected": "same"}) + "\n"
                               for i in range(3)))
    assert_failed_cleanly(good, *cli_run("rm", *flags_of(good, "rm", f"--data={skipped}")), "no usable comparisons")


@CHAIN
def test_data_that_is_a_directory(good):
    assert_failed_cleanly(good, *cli_run("rm", *flags_of(good, "rm", f"--data={good['dir']}")),
                          f"{good['dir']}: is a directory")


@CHAIN
def test_data_that_is_a_json_array(good):
    array = good["dir"] / "array.json"
    array.write_text(json.dumps([{"prompt": "q", "chosen": "a", "rejected": "b"}] * 3, indent=1))
    assert_failed_cleanly(good, *cli_run("sft", *flags_of(good, "sft", f"--data={array}")),
                          "a JSON array; expected JSON Lines, one record per line")


# ----------------------------------------------------------------------------------------------------
# Divergence: NaN / inf stops the run at its step, before anything is saved

@pytest.mark.parametrize("stage, changes, where", [
    ("sft", ["--lr=1e9", "--max_iters=6"], "sft step"),
    ("rm", ["--lr=1e9"], "rm step"),
    ("ppo", ["--lr=1e9", "--critic_lr=1e9"], "ppo iteration"),
    ("dpo", ["--lr=1e9"], "dpo step"),
])
@CHAIN
def test_huge_lr_stops_at_the_first_non_finite_number(good, stage, changes, where):
    code, err = cli_run(stage, *flags_of(good, stage, *changes))
    assert_failed_cleanly(good, code, err, "is not finite (NaN or inf)")
    assert where in err[-1] and "lower --lr" in err[-1]


# ----------------------------------------------------------------------------------------------------
# Chained stages check each other

@CHAIN
def test_ppo_refuses_an_rm_trained_on_another_sft_model(good):
    sft = torch.load(good["out"] / "sft" / "ckpt.pt", weights_only=True)
    other = good["dir"] / "other_sft.pt"                       # the same weights under another SFT config
    torch.save({**sft, "config": {**sft["config"], "seed": 7}}, other)
    code, err = cli_run("ppo", *flags_of(good, "ppo", f"--sft_ckpt={other}"))
    assert_failed_cleanly(good, code, err, "was trained on another SFT model than")
    assert "rm/ckpt.pt" in err[-1] and str(other) in err[-1] and "seed=1337 vs 7" in err[-1]


@CHAIN
def test_ppo_resume_from_a_checkpoint_of_another_model_size(good):
    ppo = torch.load(good["out"] / "ppo" / "ckpt.pt", weights_only=True)
    big = GPT(GPTConfig(**{**ppo["model_config"], "n_embd": 64}))   # a made-up PPO checkpoint, twice as wide
    path = good["dir"] / "big_ppo.pt"
    torch.save({**ppo, "model_config": {**ppo["model_config"], "n_embd": 64}, "state_dict": big.state_dict()}, path)
    code, err = cli_run("ppo", *flags_of(good, "ppo", f"--resume={path}", "--n_iters=4"))
    assert_failed_cleanly(good, code, err, "is a model of another shape than")
    assert "n_embd=64 vs 32" in err[-1] and "sft/ckpt.pt" in err[-1]


@CHAIN
def test_ppo_responses_longer_than_the_sft_block(good):
    code, err = cli_run("ppo", *flags_of(good, "ppo", "--max_response_tokens=90"))
    assert_failed_cleanly(good, code, err, "exceed block_size=96 of")


@CHAIN
def test_ppo_resume_target_at_or_below_the_checkpoint(good):
    code, err = cli_run("ppo", *flags_of(good, "ppo", f"--resume={good['out']}/ppo/ckpt.pt", "--n_iters=2"))
    assert_failed_cleanly(good, code, err, "is already at iteration 2")


@CHAIN
def test_ppo_resume_equals_an_uninterrupted_run(good):
    """2 iterations in one go (the good run) == 1 iteration, then --resume to 2: metrics and weights."""
    d = good["dir"] / "resumed"
    assert cli_run("ppo", *flags_of(good, "ppo", f"--out_dir={d}", "--n_iters=1"))[0] == 0
    assert cli_run("ppo", *flags_of(good, "ppo", f"--out_dir={d}", f"--resume={d}/ckpt.pt"))[0] == 0
    strip = lambda rows: [{k: v for k, v in row.items() if k != "seconds"} for row in rows]
    resumed, whole = read_jsonl(d / "metrics.jsonl"), read_jsonl(good["out"] / "ppo" / "metrics.jsonl")
    assert [r["iter"] for r in resumed] == [1, 2] and strip(resumed) == strip(whole)
    a = torch.load(d / "ckpt.pt", weights_only=True)["state_dict"]
    b = torch.load(good["out"] / "ppo" / "ckpt.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in b)


# ----------------------------------------------------------------------------------------------------
# File errors

@CHAIN
def test_out_dir_under_a_regular_file(good):
    blocker = good["dir"] / "a_file"
    blocker.write_text("")
    code, err = cli_run("sft", *flags_of(good, "sft", f"--out_dir={blocker}/sft"))
    assert_failed_cleanly(good, code, err, f"{blocker}/sft: not a directory")


@CHAIN
def test_out_dir_that_is_a_regular_file(good):
    blocker = good["dir"] / "a_file"
    blocker.write_text("")
    assert_failed_cleanly(good, *cli_run("sft", *flags_of(good, "sft", f"--out_dir={blocker}")),
                          "exists and is not a directory")


@CHAIN
@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
def test_disk_full_at_save_simulated_with_dev_full(good):
    """A real ENOSPC: the checkpoint's temporary file is a link to /dev/full, which refuses every write."""
    link = good["out"] / "sft" / "ckpt.pt.partial.tmp"
    os.symlink("/dev/full", link)
    try:
        code, err = cli_run("sft", *good["flags"]["sft"])
    finally:
        if os.path.lexists(link):
            os.remove(link)
    assert_failed_cleanly(good, code, err, "ckpt.pt.partial.tmp: no space left on device")


@pytest.fixture
def small_disk(tmp_path):
    """A 512 KiB tmpfs (needs root and mount rights; skipped elsewhere): a disk that fills up partway."""
    mnt = tmp_path / "small_disk"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mnt)],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here")
    yield mnt
    subprocess.run(["umount", str(mnt)], check=True)


@CHAIN
def test_disk_full_partway_through_the_checkpoint_on_a_small_tmpfs(good, small_disk):
    """A real disk that fills up partway through writing the new checkpoint (the old run's files fill most
    of it): once 'unexpected pos 427008 vs 426896' from inside torch.save; now the path and the cause."""
    previous = small_disk / "sft"
    previous.mkdir()
    for name in ("ckpt.pt", "metrics.jsonl", "eval.json"):
        (previous / name).write_bytes(good["files"][f"sft/{name}"])
    before = files_of(previous)
    code, err = cli_run("sft", *flags_of(good, "sft", f"--out_dir={previous}"))
    assert_failed_cleanly(good, code, err, "ckpt.pt.partial.tmp: no space left on device")
    assert files_of(previous) == before


@CHAIN
def test_read_only_out_dir_simulated_by_patching_open(good, monkeypatch):
    real_open = open
    rm_dir = str(good["out"] / "rm")

    def read_only(path, mode="r", *args, **kwargs):
        if str(path).startswith(rm_dir) and any(c in mode for c in "wax+"):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr("builtins.open", read_only)
    assert_failed_cleanly(good, *cli_run("rm", *good["flags"]["rm"]), "read-only file system")


# ----------------------------------------------------------------------------------------------------
# Interruptions: a real process, a real signal after its first progress line

def start_long_sft(good):
    flags = flags_of(good, "sft", "--max_iters=4000", "--eval_interval=100000")   # too long to end before the signal
    # a shell that started pytest in the background hands it SIGINT ignored, and Python then never turns
    # SIGINT into KeyboardInterrupt: give the child the default disposition, as a terminal would
    return subprocess.Popen([sys.executable, os.path.join(ROOT, "train_sft.py"), *flags], cwd=good["dir"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def wait_for_progress(proc):
    for line in proc.stdout:
        if line.startswith("sft: "):   # training has started (the first tenth is done)
            return
    raise AssertionError(f"no progress line; stderr: {proc.stderr.read()}")


@CHAIN
def test_ctrl_c_mid_training(good):
    proc = start_long_sft(good)
    wait_for_progress(proc)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert_failed_cleanly(good, proc.returncode, stderr.splitlines(), "nothing was saved", first="interrupted:")
    assert f"{good['out']}/sft is as it was" in stderr


@CHAIN
def test_ctrl_c_in_the_final_evaluation_simulated_by_a_patched_evaluate(good, monkeypatch):
    """After the checkpoint is made, before eval.json: the new checkpoint must not replace the old one either."""
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(stages.module("sft"), "evaluate_sft", interrupted)
    code, err = cli_run("sft", *flags_of(good, "sft", "--seed=7"))   # another seed: other bytes, were they saved
    assert code == 130
    assert_failed_cleanly(good, code, err, "nothing was saved", first="interrupted:")


@CHAIN
def test_sigkill_mid_training_leaves_the_old_files_in_place(good):
    """SIGKILL cannot be caught: the old files stay as they were, the new ones are left BESIDE them (.partial)."""
    proc = start_long_sft(good)
    wait_for_progress(proc)
    proc.kill()
    proc.communicate(timeout=120)
    now = files_of(good["out"])
    left = {k for k in now if k not in good["files"]}
    # and the killed run's lock, naming a process that is gone (the next run takes it over)
    assert (good["out"] / "sft" / ".writing").read_text() == str(proc.pid)
    assert all(k.endswith(".partial") for k in left - {"sft/.writing"}) and "sft/metrics.jsonl.partial" in left
    for k in left:
        os.remove(good["out"] / k)
    assert files_of(good["out"]) == good["files"]


def test_a_second_run_in_the_same_out_dir_stops(tmp_path):
    """Two runs in one out_dir would rename each other's files into place: the second stops with one line
    while the first is alive, and takes over the lock of one that is gone."""
    from nanorm.checkpoint import OutDir
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / ".writing").write_text(str(other.pid))
        with pytest.raises(SystemExit, match=rf"^error: {tmp_path}: another run \(process {other.pid}\) is writing"):
            OutDir(str(tmp_path))
    finally:
        other.kill()
        other.wait()
    out = OutDir(str(tmp_path))                  # its process has ended: the lock is taken over
    assert (tmp_path / ".writing").read_text() == str(os.getpid())
    with open(out.path("x.json"), "w") as f:
        f.write("{}")
    out.commit()
    assert sorted(os.listdir(tmp_path)) == ["x.json"]     # committed: the lock is gone
