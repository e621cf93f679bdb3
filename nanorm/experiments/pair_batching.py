"""
Why all C(K,2) pairs of a prompt go into one batch: the document's claim, measured.

InstructGPT (sec. 3.5): "if we simply shuffle the comparisons into one dataset, a single pass over the
dataset caused the reward model to overfit" -- each response sits in K-1 pairs, so shuffled pairs show
the model the same response K-1 times per epoch, in different steps. This experiment trains the RM
twice on the same rankings (the first --n_prompts of out/rm/comparisons.jsonl, without contrast pairs),
from the same SFT trunk, with the same optimiser, steps per epoch and learning-rate schedule:

  kwise     train_rm.py's way: --prompts_per_batch prompts a step, all their pairs, each response
            forwarded once, 1/C(K,2) per prompt (nanorm/reward.py::bradley_terry_loss);
  shuffled  every pair an example of its own, shuffled across prompts, as many pairs a step as the
            kwise steps hold on average, each pair's two responses forwarded (2 forwards a pair).

and evaluates both on the held-out rankings (out/rm/eval_comparisons.jsonl) --evals_per_epoch times an
epoch, for --epochs epochs.

    python -m nanorm.experiments.pair_batching                  # after python train_sft.py && python train_rm.py
    python -m nanorm.experiments.pair_batching --publish=true   # also copy the figure to lessons/figures/

Writes out/pair_batching/pair_batching.json and pair_batching.png.
"""

import math
import random
import sys
import time
from dataclasses import asdict, dataclass

import torch

import train_rm
from nanorm.config import at_least, parse_config, seed_everything
from nanorm.experiments.common import fresh_rm, load_rm_study, write_results
from nanorm.prefdata import Comparison
from nanorm.reward import bradley_terry_loss, ranking_to_pairs
from nanorm.tokenizer import DEFAULT_RANKS



@dataclass
class PairBatchingConfig:
    comparisons: str = "out/rm/comparisons.jsonl"        # the default train_rm.py run's rankings
    eval_comparisons: str = "out/rm/eval_comparisons.jsonl"
    sft_ckpt: str = "out/sft/ckpt.pt"
    tokenizer: str = DEFAULT_RANKS
    out_dir: str = "out/pair_batching"
    n_prompts: int = 300              # training rankings used (each ~20 pairs)
    epochs: int = 3
    prompts_per_batch: int = 2        # kwise: prompts a step (train_rm.py's default)
    evals_per_epoch: int = 4
    lr: float = 3e-4                  # train_rm.py's, with its cosine decay to lr / 10 over all the steps
    seed: int = 1337
    threads: int = 0
    publish: bool = False

    def check(self):
        at_least(self, 1, "n_prompts", "epochs", "prompts_per_batch", "evals_per_epoch")


def as_pair_records(records):
    """Every (winner, loser) pair of every ranking as a ranking of its own: K = 2, ranking [0, 1]."""
    out = []
    for rec in records:
        for w, l in ranking_to_pairs(rec.ranking):
            out.append(Comparison(rec.prompt, [rec.responses[w], rec.responses[l]], [0, 1], rec.labeler,
                                  {"finished": [rec.finished[w], rec.finished[l]]}))
    return out


def train(way, sft, records, eval_records, tok, cfg, max_new):
    """One RM from the SFT trunk, trained `way` (kwise | shuffled); its held-out curve."""
    seed_everything(cfg.seed)
    if way == "kwise":
        examples, per_step = records, cfg.prompts_per_batch
    else:   # the same steps per epoch: as many pairs a step as a kwise step holds on average
        examples = as_pair_records(records)
        per_step = max(1, round(len(examples) / math.ceil(len(records) / cfg.prompts_per_batch)))
    steps_per_epoch = math.ceil(len(examples) / per_step)
    rm, optimizer, scheduler = fresh_rm(sft, cfg.lr, steps_per_epoch * cfg.epochs)
    args = (tok, max_new, torch.device("cpu"), "float32")
    eval_at = {round(steps_per_epoch * (i + 1) / cfg.evals_per_epoch) for i in range(cfg.evals_per_epoch)}
    _, loss0, acc0 = train_rm.rewards_and_loss(rm, eval_records, *args)
    curve = [{"epoch": 0.0, "heldout_loss": loss0, "heldout_acc": acc0, "train_loss": None}]
    step, forwards, t0 = 0, 0, time.time()
    rm.train()
    for epoch in range(cfg.epochs):
        order = list(range(len(examples)))
        random.Random(cfg.seed + epoch).shuffle(order)
        losses = []
        for i, at in enumerate(range(0, len(order), per_step)):
            batch = [examples[j] for j in order[at:at + per_step]]
            r, idx_w, idx_l, group = train_rm.forward_rewards(rm, batch, *args)
            loss = bradley_terry_loss(r, idx_w, idx_l, group)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(rm.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            step, forwards = step + 1, forwards + len(r)
            losses.append(loss.item())
            if i + 1 in eval_at:
                _, loss_h, acc_h = train_rm.rewards_and_loss(rm, eval_records, *args)
                curve.append({"epoch": epoch + (i + 1) / steps_per_epoch, "heldout_loss": loss_h,
                              "heldout_acc": acc_h, "train_loss": sum(losses) / len(losses)})
                losses = []
                print(f"  {way:8s} epoch {curve[-1]['epoch']:4.2f} | train loss {curve[-1]['train_loss']:.4f} | "
                      f"held-out loss {loss_h:.4f} acc {acc_h:.3f} ({time.time() - t0:.0f}s)", flush=True)
    return {"way": way, "examples": len(examples), "per_step": per_step, "steps": step, "forwards": forwards,
            "seconds": round(time.time() - t0, 1), "curve": curve}


def make_figure(res, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for run, color in zip(res["runs"], ["tab:blue", "tab:red"]):
        xs = [p["epoch"] for p in run["curve"]]
        label = (f"{run['way']}: {run['per_step']} {'prompts' if run['way'] == 'kwise' else 'pairs'} a step, "
                 f"{run['forwards'] // res['config']['epochs']} forwards an epoch")
        axes[0].plot(xs, [p["heldout_loss"] for p in run["curve"]], "o-", color=color, label=label)
        axes[0].plot(xs[1:], [p["train_loss"] for p in run["curve"][1:]], "--", color=color, alpha=0.6,
                     label=f"{run['way']}: training loss (mean since the last point)")
        axes[1].plot(xs, [p["heldout_acc"] for p in run["curve"]], "o-", color=color, label=run["way"])
    axes[0].axhline(math.log(2), color="gray", ls=":", lw=1, label="ln 2 (chance)")
    axes[0].set(xlabel="epoch", ylabel="Bradley-Terry loss", title="held-out loss (solid), training loss (dashed)")
    axes[1].set(xlabel="epoch", ylabel="pairwise accuracy", title="held-out accuracy vs labeler A")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"The same {res['n_prompts']} rankings ({res['n_pairs']} pairs): K-wise batches vs shuffled pairs")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv):
    cfg = parse_config(PairBatchingConfig, argv)
    tok, sft, max_new, records, eval_records = load_rm_study(cfg)
    n_pairs = sum(math.comb(len(r.responses), 2) for r in records)
    print(f"{len(records)} training rankings ({n_pairs} pairs), {len(eval_records)} held-out rankings")
    res = {"config": asdict(cfg), "n_prompts": len(records), "n_pairs": n_pairs,
           "runs": [train(way, sft, records, eval_records, tok, cfg, max_new) for way in ("kwise", "shuffled")]}
    print("\n  way       forwards/epoch   held-out loss at each epoch (min)        accuracy at each epoch")
    for run in res["runs"]:
        ends = [p for p in run["curve"] if abs(p["epoch"] - round(p["epoch"])) < 1e-9 and p["epoch"] > 0]
        best = min(run["curve"], key=lambda p: p["heldout_loss"])
        print(f"  {run['way']:9s} {run['forwards'] // cfg.epochs:8d}        "
              + " ".join(f"{p['heldout_loss']:.4f}" for p in ends)
              + f"  ({best['heldout_loss']:.4f} at {best['epoch']:.2f})"
              + "      " + " ".join(f"{p['heldout_acc']:.3f}" for p in ends))
    write_results(res, cfg.out_dir, "pair_batching", make_figure, cfg.publish)
    return res


if __name__ == "__main__":
    main(sys.argv[1:])
