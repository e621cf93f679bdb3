"""
Process against outcome reward models: the same labelled solutions, judged step by step or by the answer.

The question (the source document's second open question; Lightman et al. 2023, "Let's verify step by
step"): is it better to reward each step of a solution, or only its final answer? This world's answers are
one sentence, so the experiment brings its own family of multi-step answers, used nowhere else:

    chain prompt   "What is 3 plus 1 minus 2?"   two or three operations on the numbers 0..4, chosen so that
                                                  every correct step is a sum the SFT model has learned
    solution       "3 plus 1 is 4. 4 minus 2 is 2."   one sentence per step, the answer in the last one

Solutions come from a fixed generator (as PRM800K's came from a fixed GPT-4): a step may slip in its result
(off by 1 or 2, probability --slip) and may start from a number other than the last result (a copying
slip, --copy_slip). A step is correct when it starts from the last result (the prompt's first number for the
first step), applies the prompt's next operation, and computes it right. Errors can cancel: "3 plus 1 is 5.
4 minus 2 is 2." ends on the right answer through two wrong steps.

Three reward models, each the SFT trunk with its scalar head (nanorm/model.py::ScalarHeadModel), trained with
a logistic loss on the SAME labelled solutions (one labelling budget, --budgets solutions), by labelers who
err on a fraction --label_noise of their labels:
    orm         outcome RM: one label per solution, "is the final answer right?", read at the last token
    orm_valid   outcome RM on the whole chain: "is every step right?", one label, read at the last token
    prm         process RM: one label per step, read at each step's full stop, up to and including the
                first wrong step (the labeler stops there, as in PRM800K); its score of a solution is the
                sum of log P(step correct) over the steps, the log of Lightman's product
orm_valid against prm separates the labels' content (both say whether the chain is sound) from where they
are read (once, or at each step). The measure is best-of-n on test prompts: among n generated solutions
the RM picks one; is its final answer right, and is every step of it right? "right for a wrong reason"
(the answer right, a step wrong) is what an outcome label rewards and a careful reader does not.

    python -m nanorm.experiments.process_rewards                 # after train_sft.py; ~30 minutes
    python -m nanorm.experiments.process_rewards --publish=true  # also copy the figure to lessons/figures/

Writes out/process_rewards/process_rewards.json and .png. Not run here: PPO against each RM (dense step
rewards against one final score); train_ppo.py's prompts are the world's four families (lesson 07).
"""

import math
import os
import random
import sys
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from nanorm import world
from nanorm.config import at_least, parse_config, print_config, require, seed_everything, within
from nanorm.evaluate import load_policy
from nanorm.experiments.common import fresh_rm, write_results
from nanorm.model import pad
from nanorm.tokenizer import DEFAULT_RANKS, load_tokenizer

KINDS = ("orm", "orm_valid", "prm")


@dataclass
class ProcessConfig:
    sft_ckpt: str = "out/sft/ckpt.pt"
    tokenizer: str = DEFAULT_RANKS
    out_dir: str = "out/process_rewards"
    budgets: str = "250,1000,4000"       # labelled solutions per RM (from training prompts), comma-separated
    seeds: int = 2                       # repeats of each budget (generator, labels, training): the spread
    slip: float = 0.15                   # P(a step's result is off by 1 or 2)
    copy_slip: float = 0.1               # P(a step starts from a number other than the last result)
    label_noise: float = 0.05            # P(a labeler gets one label wrong), outcome and step labels alike
    n_test_prompts: int = 0              # test chain prompts for best-of-n (0: all 293)
    n_candidates: int = 16               # solutions per test prompt; best-of-n for n = 1, 2, 4, ... this
    steps: int = 800                     # optimiser steps per RM, whatever its budget (a small one repeats)
    batch_size: int = 32                 # solutions per step
    lr: float = 3e-4                     # train_rm.py's, with its cosine decay to lr / 10
    seed: int = 1337
    threads: int = 0
    publish: bool = False

    def check(self):
        at_least(self, 1, "seeds", "n_candidates", "steps", "batch_size")
        at_least(self, 0, "n_test_prompts")
        within(self, 0, 1, "slip", "copy_slip")
        within(self, 0, 0.5, "label_noise")
        at_least(self, 0, "lr")
        try:
            budgets = [int(b) for b in self.budgets.split(",")]
        except ValueError:
            raise SystemExit(f"error: --budgets={self.budgets}: expected whole numbers, comma-separated")
        if min(budgets) < 1:
            raise SystemExit(f"error: --budgets={self.budgets}: each budget must be at least 1")


# ---------------------------------------------------------------------------------------------------
# The chain family: prompts, a generator of solutions with slips, and the step checker
# ---------------------------------------------------------------------------------------------------

def _apply(x, op, y):
    return x + y if op == "plus" else x - y


def chain_prompts():
    """Every chain of two or three operations on 0..MAX_NUMBER whose correct running values all stay in
    0..MAX_NUMBER, as world.Prompt (family "chain", "What is ...?"). info: start, ops [[op, number], ...],
    answer."""
    top = world.MAX_NUMBER
    chains = [(a, ()) for a in range(top + 1)]
    prompts = []
    for length in (1, 2, 3):
        chains = [(a, ops + ((op, y),)) for a, ops in chains for op in ("plus", "minus") for y in range(top + 1)
                  if 0 <= _apply(_value(a, ops), op, y) <= top]
        if length == 1:
            continue
        for a, ops in chains:
            expr = " ".join([str(a)] + [f"{op} {y}" for op, y in ops])
            text = f"What is {expr}?"
            info = {"start": a, "ops": [list(o) for o in ops], "answer": _value(a, ops)}
            prompts.append(world.Prompt(id=f"chain-{expr.replace(' ', '')}", family="chain", text=text, info=info))
    return prompts


def _value(a, ops):
    for op, y in ops:
        a = _apply(a, op, y)
    return a


def write_solution(prompt, rng, slip, copy_slip):
    """One generated solution: [(x, op, y, z), ...], the step "x op y is z." for each operation."""
    steps, last = [], prompt.info["start"]
    for op, y in prompt.info["ops"]:
        x = last
        if steps and rng.random() < copy_slip:            # starts from a number other than the last result
            x = max(0, last + rng.choice((-1, 1)))
            x = x if x != last else last + 1
        z = _apply(x, op, y)
        if rng.random() < slip:                           # the result is off by 1 or 2 (a slip never makes it negative)
            off = rng.choice((-2, -1, 1, 2))
            z = z + off if z + off >= 0 else z - off
        steps.append((x, op, y, z))
        last = z
    return steps


def step_text(step):
    x, op, y, z = step
    return f"{x} {op} {y} is {z}."


def check_steps(prompt, steps):
    """Each step's verdict, judged in order as a careful reader would: correct when it starts from the last
    result (the prompt's first number for the first step), uses the prompt's operation, and computes it."""
    verdicts, last = [], prompt.info["start"]
    for (x, op, y, z), (want_op, want_y) in zip(steps, prompt.info["ops"]):
        verdicts.append(x == last and op == want_op and y == want_y and z == _apply(x, op, y))
        last = z
    return verdicts


def answer_correct(prompt, steps):
    return steps[-1][3] == prompt.info["answer"]


# ---------------------------------------------------------------------------------------------------
# Labelled solutions, encoded
# ---------------------------------------------------------------------------------------------------

def encode(tok, prompt, steps):
    """(token ids of prompt + response + EOS, the index of each step's last token in them). The response
    is encoded step by step; BPE never merges across a sentence's full stop and the next word's space, so
    this is the encoding of the whole text (checked)."""
    ids = tok.encode_prompt(prompt.text)
    ends = []
    for step in steps:
        ids = ids + tok.encode(" " + step_text(step))
        ends.append(len(ids) - 1)
    full = tok.encode_prompt(prompt.text) + tok.encode_response(" ".join(step_text(s) for s in steps))
    assert ids + [tok.eos_id] == full, "step-wise encoding differs from the whole text's"
    return full, ends


def make_items(tok, prompts, per_prompt, rng, cfg, label_noise):
    """per_prompt solutions of each prompt, each a dict: ids, step ends, the true verdicts (steps, answer,
    valid) and the labeler's (outcome, valid, step labels up to the first step they mark wrong)."""
    flip = lambda truth: truth != (rng.random() < label_noise)
    items = []
    for p in prompts:
        for _ in range(per_prompt):
            steps = write_solution(p, rng, cfg.slip, cfg.copy_slip)
            ids, ends = encode(tok, p, steps)
            verdicts = check_steps(p, steps)
            step_labels = []
            for v in verdicts:                   # the labeler stops at the first step they judge wrong
                step_labels.append(flip(v))
                if not step_labels[-1]:
                    break
            items.append({"ids": ids, "ends": ends, "steps": verdicts, "answer": answer_correct(p, steps),
                          "valid": all(verdicts), "label_answer": flip(answer_correct(p, steps)),
                          "label_valid": flip(all(verdicts)), "label_steps": step_labels, "prompt": p.id})
    return items


# ---------------------------------------------------------------------------------------------------
# Training and scoring
# ---------------------------------------------------------------------------------------------------

def rm_outputs(kind, rm, tok, items):
    """The RM on a batch of items: the PRM's scalar at every position (B, T); an outcome RM's at each
    solution's final token, its EOS (B,), read by ScalarHeadModel.score like any reward."""
    idx, mask = pad([it["ids"] for it in items], tok.pad_id)
    return rm(idx, mask) if kind == "prm" else rm.score(idx, mask)


def loss_of(kind, rm, tok, items):
    """Logistic loss of one batch: at the last token for the outcome RMs, at each labelled step for the PRM."""
    out = rm_outputs(kind, rm, tok, items)
    if kind == "prm":
        rows = [i for i, it in enumerate(items) for _ in it["label_steps"]]
        cols = [e for it in items for e in it["ends"][:len(it["label_steps"])]]
        target = torch.tensor([float(y) for it in items for y in it["label_steps"]])
        return F.binary_cross_entropy_with_logits(out[rows, cols], target)
    key = "label_answer" if kind == "orm" else "label_valid"
    return F.binary_cross_entropy_with_logits(out, torch.tensor([float(it[key]) for it in items]))


@torch.no_grad()
def solution_scores(kind, rm, tok, items, batch_size=256):
    """One score per solution: the outcome logit, or the PRM's sum of log P(step correct)."""
    rm.eval()
    out = []
    for at in range(0, len(items), batch_size):
        chunk = items[at:at + batch_size]
        values = rm_outputs(kind, rm, tok, chunk)
        if kind == "prm":
            out += [-F.softplus(-values[i, it["ends"]]).sum().item() for i, it in enumerate(chunk)]   # log sigmoid
        else:
            out += values.tolist()
    return np.array(out)


def train(kind, sft, tok, items, cfg, seed):
    """One RM from the SFT trunk, trained on the items' labels of its kind for cfg.steps steps of cfg.batch_size
    (passes over the items in a fresh order each; train_rm.py's optimiser, schedule and clipping)."""
    seed_everything(seed)
    rm, optimizer, scheduler = fresh_rm(sft, cfg.lr, cfg.steps)
    rm.train()
    stream, shuffles = [], random.Random(seed)       # the items in one fresh order after another
    for _ in range(cfg.steps):
        while len(stream) < cfg.batch_size:
            stream += shuffles.sample(range(len(items)), len(items))
        batch, stream = stream[:cfg.batch_size], stream[cfg.batch_size:]
        loss = loss_of(kind, rm, tok, [items[j] for j in batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(rm.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
    return rm


def best_of_n(scores, answer, valid, n):
    """Pick the top-scoring of each group of n candidates (the n_candidates of a prompt cut into groups):
    the share of picks whose answer is right, whose every step is right, and right for a wrong reason.
    scores, answer, valid: (prompts, n_candidates)."""
    P, C = scores.shape
    groups = scores[:, :C - C % n].reshape(P, -1, n)
    pick = groups.argmax(-1)                                                  # (P, groups)
    take = lambda a: np.take_along_axis(a[:, :C - C % n].reshape(P, -1, n), pick[..., None], -1)[..., 0]
    a, v = take(answer), take(valid)
    return {"answer": float(a.mean()), "valid": float(v.mean()), "right_wrong_reason": float((a & ~v).mean())}


def ns_of(n_candidates):
    ns, n = [], 1
    while n <= n_candidates:
        ns.append(n)
        n *= 2
    return ns


# ---------------------------------------------------------------------------------------------------
# The experiment
# ---------------------------------------------------------------------------------------------------

def make_figure(res, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(13, 4))
    ns, top = res["ns"], str(max(int(b) for b in res["runs"]))
    colours = {"orm": "tab:orange", "orm_valid": "tab:green", "prm": "tab:blue"}
    for kind in KINDS:
        rows = res["runs"][top][kind]
        for ax, key in ((ax1, "answer"), (ax3, "right_wrong_reason")):
            m = [np.mean([r["best_of"][str(n)][key] for r in rows]) for n in ns]
            s = [np.std([r["best_of"][str(n)][key] for r in rows]) for n in ns]
            ax.errorbar(ns, m, yerr=s, marker="o", capsize=3, color=colours[kind], label=kind)
        budgets = sorted(int(b) for b in res["runs"])
        big = str(max(ns))
        m = [np.mean([r["best_of"][big]["answer"] for r in res["runs"][str(b)][kind]]) for b in budgets]
        s = [np.std([r["best_of"][big]["answer"] for r in res["runs"][str(b)][kind]]) for b in budgets]
        ax2.errorbar(budgets, m, yerr=s, marker="o", capsize=3, color=colours[kind], label=kind)
    ax1.plot(ns, [res["oracle"][str(n)] for n in ns], "k--", lw=1, label="pass@n (a right answer among n)")
    ax1.set(xscale="log", xlabel="n (solutions to choose from)", ylabel="share of picks with the right answer",
            title=f"best-of-n, {top} labelled solutions")
    ax2.axhline(res["oracle"]["1"], color="gray", ls=":", lw=1, label="one solution, no RM")
    ax2.set(xscale="log", xlabel="labelled solutions (the labelling budget)", ylabel="right answer",
            title=f"best-of-{max(ns)} against the budget")
    ax3.set(xscale="log", xlabel="n", ylabel="share of picks: answer right, a step wrong",
            title="right for a wrong reason")
    for ax, ticks in ((ax1, ns), (ax2, budgets), (ax3, ns)):
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.minorticks_off()
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv):
    cfg = parse_config(ProcessConfig, argv)
    print_config(cfg)
    os.makedirs(cfg.out_dir, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    t0 = time.time()
    prompts = chain_prompts()
    train_prompts = [p for p in prompts if world.split_of(p) == "train"]
    test_prompts = [p for p in prompts if world.split_of(p) == "test"]
    require(cfg, "n_test_prompts", cfg.n_test_prompts <= len(test_prompts),
            f"the chain family has {len(test_prompts)} test prompts (0: all of them)")
    random.Random(cfg.seed).shuffle(test_prompts)
    test_prompts = test_prompts[:cfg.n_test_prompts or None]
    tok = load_tokenizer(cfg.tokenizer)
    sft, _ = load_policy(cfg.sft_ckpt, tok, torch.device("cpu"), kinds="sft")
    test = make_items(tok, test_prompts, cfg.n_candidates, random.Random(cfg.seed + 1), cfg, 0.0)
    shape = (len(test_prompts), cfg.n_candidates)
    answer = np.array([it["answer"] for it in test]).reshape(shape)
    valid = np.array([it["valid"] for it in test]).reshape(shape)
    ns = ns_of(cfg.n_candidates)
    oracle = {str(n): best_of_n(answer.astype(float), answer, valid, n)["answer"] for n in ns}   # pass@n
    print(f"{len(prompts)} chain prompts ({len(train_prompts)} train, {len(test_prompts)} test used); "
          f"generated solutions: answer right {answer.mean():.3f}, every step right {valid.mean():.3f}, "
          f"right for a wrong reason {(answer & ~valid).mean():.3f}")
    res = {"config": asdict(cfg), "n_prompts": len(prompts), "n_train_prompts": len(train_prompts),
           "n_test_prompts": len(test_prompts), "ns": ns, "oracle": oracle,
           "generator": {"answer": float(answer.mean()), "valid": float(valid.mean()),
                         "right_wrong_reason": float((answer & ~valid).mean())}, "runs": {}}
    for budget in [int(b) for b in cfg.budgets.split(",")]:
        res["runs"][str(budget)] = {kind: [] for kind in KINDS}
        for s in range(cfg.seeds):
            seed = cfg.seed + 1000 * s
            rng = random.Random(seed)
            chosen = [rng.choice(train_prompts) for _ in range(budget)]      # one solution each, prompts repeat
            items = make_items(tok, chosen, 1, rng, cfg, cfg.label_noise)
            for kind in KINDS:
                t1 = time.time()
                rm = train(kind, sft, tok, items, cfg, seed)
                scores = solution_scores(kind, rm, tok, test).reshape(shape)
                row = {"seed": seed, "seconds": round(time.time() - t1, 1),
                       "best_of": {str(n): best_of_n(scores, answer, valid, n) for n in ns}}
                res["runs"][str(budget)][kind].append(row)
                b = row["best_of"][str(ns[-1])]
                print(f"  budget {budget:5d} seed {s} {kind:9s} best-of-{ns[-1]}: answer right {b['answer']:.3f}, "
                      f"every step right {b['valid']:.3f}, right for a wrong reason {b['right_wrong_reason']:.3f} "
                      f"({row['seconds']:.0f}s)", flush=True)
    res["seconds"] = round(time.time() - t0, 1)
    write_results(res, cfg.out_dir, "process_rewards", make_figure, cfg.publish)
    return res


if __name__ == "__main__":
    main(sys.argv[1:])
