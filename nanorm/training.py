"""
Plumbing of the training loops: the learning-rate schedule, the guard against non-finite numbers and a
progress display.

One schedule for the stages that train on a fixed dataset (SFT, DPO): linear warm-up to the peak lr,
then a cosine decay towards min_lr, which it would reach one step after the last. (train_rm.py still uses
torch's CosineAnnealingLR, the same curve computed recursively: equal to lr_at(step, lr, lr / 10, 0, total)
but for the last bits, and kept until the RM's quoted numbers are next re-measured.)
"""

import math
import sys
import time

import torch
from tqdm import tqdm


def lr_at(step, lr, min_lr, warmup, total):
    """The learning rate of optimizer step `step` (0-based) of `total`."""
    if step < warmup:
        return lr * (step + 1) / warmup                                    # linear warm-up
    progress = (step - warmup) / max(1, total - warmup)                    # 0 -> 1 over the decay
    return min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * min(1.0, progress)))   # cosine to min_lr


def stop_if_not_finite(where, hint, /, **values):
    """The guard of every training loop, one call per step (where: "sft step 12"): a loss, reward or gradient
    norm (a number or a tensor) that is NaN or infinite stops the run with one line naming it, the step and
    a hint, before anything is saved. (A non-finite gradient norm is caught at its step: clipping by it
    makes every weight NaN.)"""
    for name, value in values.items():
        if not (torch.isfinite(value).all() if torch.is_tensor(value) else math.isfinite(value)):
            raise SystemExit(f"error: {where}: {name} is not finite (NaN or inf); the run stopped "
                             f"and nothing was saved; {hint}")


def set_lr(optimizer, lr):
    for group in optimizer.param_groups:
        group["lr"] = lr


class _LogLines:
    """tqdm's interface, for output that is not a terminal: one plain line each tenth of the way, not a
    carriage-return progress bar rewritten hundreds of times into a log file."""

    def __init__(self, total, desc):
        self.total, self.desc, self.n, self.postfix, self.t0 = total, desc, 0, {}, time.time()
        self.next_report = max(1, total // 10)

    def update(self, n=1):
        self.n += n
        if self.n >= self.next_report or self.n == self.total:
            self.next_report += max(1, self.total // 10)
            extra = "".join(f" {k}={v}" for k, v in self.postfix.items())
            print(f"{self.desc}: {self.n}/{self.total} ({time.time() - self.t0:.0f}s){extra}", flush=True)

    def set_postfix(self, **kwargs):
        self.postfix = kwargs

    def close(self):
        pass


def progress(total, desc):
    """A tqdm bar on a terminal; plain log lines elsewhere (a pipe, a log file, CI)."""
    if sys.stderr.isatty():
        return tqdm(total=total, desc=desc, dynamic_ncols=True)
    return _LogLines(total, desc)
