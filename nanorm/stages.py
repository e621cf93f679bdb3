"""
The four stages as functions, for the experiments, the benchmarks and the tests.

Each stage is a script at the top of the repo (train_sft.py, train_rm.py, train_ppo.py, train_dpo.py)
with one config dataclass and `main(cfg) -> report` (the dict it also writes to eval.json). This module
imports them by name, so other code calls a stage and reads its result as a return value:

    from nanorm import stages
    report = stages.run("rm", sft_ckpt="out/sft/ckpt.pt", n_prompts=200)   # in this process
    defaults = stages.defaults("ppo")                                        # PPOConfig's fields
    child = stages.run_in_child("ppo", log_path, beta=0.02)   # in its own process: report, seconds, memory

`run_in_child` starts a fresh Python process (spawn), so several stages can run at once (one per
core) and each one's peak memory is its own; the stage's printed output goes to log_path.
"""

import concurrent.futures
import dataclasses
import importlib
import multiprocessing
import os
import resource
import sys
import time

from nanorm.checkpoint import discard_unfinished
from nanorm.config import make_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = {"sft": "SFTConfig", "rm": "RMConfig", "ppo": "PPOConfig", "dpo": "DPOConfig"}


def module(name):
    """The script train_<name>.py as a module (importing it runs nothing: its work is in main)."""
    if name not in CONFIGS:
        raise ValueError(f"unknown stage {name!r}: expected one of {', '.join(CONFIGS)}")
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    return importlib.import_module(f"train_{name}")


def config(name, **overrides):
    """The stage's config with some fields changed; unknown fields and bad values are refused as on the
    command line (the config's own check())."""
    return make_config(getattr(module(name), CONFIGS[name]), **overrides)


def defaults(name):
    """{field: default} of the stage's config."""
    return dataclasses.asdict(config(name))


def run(name, **overrides):
    """Run a stage in this process; returns its report. If it fails, its out_dir keeps the files it had."""
    try:
        return module(name).main(config(name, **overrides))
    except BaseException:
        discard_unfinished()   # the .partial files of the failed run (nanorm/checkpoint.py::OutDir)
        raise


def _child(name, overrides, log_path):
    """In the child process: output to log_path, run the stage; returns its report, wall seconds, peak
    resident memory (MiB, this process alone) and peak GPU memory (MiB, None without CUDA)."""
    with open(log_path, "a", encoding="utf-8") as log:
        os.dup2(log.fileno(), 1)            # the child's stdout and stderr, C-level writes included
        os.dup2(log.fileno(), 2)
        sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
        sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)
        t0 = time.time()
        device = config(name, **overrides).device
        report = run(name, **overrides)      # as in this process: a failed run leaves no .partial files
        sys.stdout.flush()
    import torch
    gpu = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
    return {"report": report, "seconds": time.time() - t0, "device": device,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,   # Linux: KiB
            "peak_gpu_mib": gpu}


class StageFailed(RuntimeError):
    pass


def pool(jobs):
    """A pool of `jobs` fresh processes, each used for one stage run only."""
    return concurrent.futures.ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                                                  max_tasks_per_child=1)


def submit(executor, name, log_path, **overrides):
    """Start a stage in the pool; the future's result is _child's dict (report, seconds, memory)."""
    return executor.submit(_child, name, overrides, os.path.abspath(log_path))


def result(future, log_path):
    """The future's result, or StageFailed with the end of the stage's log."""
    try:
        return future.result()
    except (Exception, SystemExit) as e:   # noqa: BLE001 - the stage's own error is in its log
        with open(log_path, encoding="utf-8", errors="replace") as f:
            tail = f.read()[-3000:]
        raise StageFailed(f"{e.__class__.__name__}: {e}\nthe end of {log_path}:\n{tail}") from None


def run_in_child(name, log_path, **overrides):
    """Run a stage in a fresh process of its own; returns _child's dict (report, seconds, memory)."""
    with pool(1) as executor:
        return result(submit(executor, name, log_path, **overrides), log_path)
