"""
Labeler disagreement: one labeler per prompt, a majority of three, or their soft vote?

Labelers disagree (about one pair in four here, as in InstructGPT). A labelling budget can buy one
ranking of many prompts, or several rankings of fewer prompts, and several rankings can be trained on
as a majority vote or as the share of votes (a soft target p: the Bradley-Terry loss
-(p log sigma(d) + (1 - p) log sigma(-d)), nanorm/reward.py). This experiment trains one reward model
each way, from the same SFT trunk with the same optimiser, on the responses train_rm.py collected
(out/rm/comparisons.jsonl: K = 4..9 SFT samples per prompt):

    one_labeler      the first --n_prompts prompts, one ranking each (the record's own labeler: train_rm.py's)
    one_labeler_3x   the first 3 x --n_prompts prompts, one ranking each: the same budget as the two below
    majority_of_3    the first --n_prompts prompts, ranked by three different training labelers; each pair
                     goes the way at least two of them put it
    soft_vote        the same three rankings; each pair's target is the share of the three who preferred it
    per_labeler      the same three rankings, each kept with its labeler: a reward per person, r_l = r + o_l
                     (PerLabelerRM: one more output of the trunk per training labeler, o_l, zero at the
                     start), each ranking trained on its own labeler's reward (labeler_rewards). A new person gets the
                     population's, r + mean_l o_l. With every o_l held at zero this is soft_vote's loss.

Each RM is judged on train_rm.py's held-out rankings (held-out labelers A and B,
out/rm/eval_comparisons.jsonl): accuracy against A, agreement, gold, ECE against A's choices, and
prob_error, the mean |sigma(r_w - r_l) - P_A(w > l)| against labeler A's true choice probability (how
well the RM predicts how sure a labeler is, not only who wins). Then best-of-16 on held-out test prompts
with each RM as the judge, against one SFT sample (gold win rate, ties half): what an optimiser gains.
Last, how personal the taste is: each training labeler ranks the held-out responses afresh, and each RM
is scored against each of them (per_labeler with that person's own reward).

    python -m nanorm.experiments.labeler_votes          # after train_sft.py and train_rm.py, ~6 minutes
    python -m nanorm.experiments.labeler_votes --publish=true   # also copy the figure to lessons/figures/
    python -m nanorm.experiments.labeler_votes --ppo=all        # and what PPO makes of each RM (~40 min)

With --ppo=all (or some ways: --ppo=one_labeler,soft_vote) each of those RMs is also saved as train_rm.py
saves one (OUT_DIR/rm_<way>/ckpt.pt, normalised on the SFT samples of the first --n_prompts rankings;
per_labeler as its population reward r + mean_l o_l, PerLabelerRM.population), measured on minimal
pairs (what_the_rm_sees.py), and optimised by the default train_ppo.py (OUT_DIR/ppo_<way>/, --jobs at a
time): PPO's gold win rate over SFT and its KL, per RM.

Writes out/labeler_votes/labeler_votes.json and .png.
"""

import os
import random
import shlex
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

import numpy as np
import torch

import train_rm
from nanorm import world
from nanorm.config import at_least, parse_config, require
from nanorm.data import sample_responses
from nanorm.evaluate import rm_scores
from nanorm.checkpoint import load_checkpoint, save_checkpoint
from nanorm.experiments import what_the_rm_sees
from nanorm.experiments.common import load_rm_study, stage, train_study_rm, write_results
from nanorm.model import ScalarHeadModel
from nanorm.prefdata import Comparison
from nanorm.reward import bradley_terry_loss, kwise_pairs, pairwise_accuracy, ranking_to_pairs
from nanorm.tokenizer import DEFAULT_RANKS

WAYS = ("one_labeler", "one_labeler_3x", "majority_of_3", "soft_vote", "per_labeler")


@dataclass
class VotesConfig:
    comparisons: str = "out/rm/comparisons.jsonl"        # the default train_rm.py run's rankings
    eval_comparisons: str = "out/rm/eval_comparisons.jsonl"
    sft_ckpt: str = "out/sft/ckpt.pt"
    tokenizer: str = DEFAULT_RANKS
    out_dir: str = "out/labeler_votes"
    n_prompts: int = 400              # prompts ranked three times; one_labeler_3x takes three times as many
    n_labelers: int = 8               # train_rm.py's labelers (its --seed draws them), the last two held out
    prompts_per_batch: int = 2        # train_rm.py's default
    epochs: int = 1
    lr: float = 3e-4                  # train_rm.py's, with its cosine decay to lr / 10
    best_of: int = 16                 # candidates per test prompt for the best-of-n row (0 = skip)
    n_test_prompts: int = 300         # held-out test prompts for best-of-n
    seed: int = 1337                  # train_rm.py's --seed: its labelers
    threads: int = 0
    ppo: str = ""                     # RMs (ways, comma-separated, or all) also saved, measured on minimal pairs
                                      # and optimised by train_ppo.py; empty: none
    ppo_flags: str = ""               # more flags for every train_ppo.py (the tests: a tiny run)
    see_flags: str = ""               # ... for every what_the_rm_sees
    jobs: int = 2                     # train_ppo.py runs at once, each a process with --ppo_threads
    ppo_threads: int = 1
    publish: bool = False

    def check(self):
        at_least(self, 1, "n_prompts", "prompts_per_batch", "epochs", "n_test_prompts", "jobs")
        at_least(self, 0, "ppo_threads")
        require(self, "ppo", all(w in WAYS for w in self.ppo_ways()), f"expected all or ways among {', '.join(WAYS)}")
        at_least(self, 0, "best_of")
        at_least(self, 5, "n_labelers")   # three training labelers and the two held-out ones

    def ppo_ways(self):
        return list(WAYS) if self.ppo == "all" else [w.strip() for w in self.ppo.split(",") if w.strip()]


def vote_targets(rankings, K):
    """Three (or any number of) rankings of the same K responses -> the share of them that put i above j,
    for each pair (i, j), i < j, in ranking_to_pairs(range(K)) order."""
    above = [{(w, l) for w, l in ranking_to_pairs(r)} for r in rankings]
    return [sum((i, j) in a for a in above) / len(rankings) for i, j in ranking_to_pairs(list(range(K)))]


def relabel(records, labelers, n_votes, seed):
    """Each record ranked by n_votes different training labelers (the record's own first, so its first vote
    is train_rm.py's ranking), in meta["votes"], and who cast them in meta["voters"]."""
    rng = random.Random(seed)
    by_id = {lab.id: lab for lab in labelers}
    out = []
    for rec in records:
        p = world.Prompt.from_dict(rec.meta["world_prompt"])
        others = rng.sample([lab.id for lab in labelers if lab.id != rec.labeler], n_votes - 1)
        votes = [rec.ranking] + [by_id[i].rank(p, rec.responses, rng, finished=rec.finished) for i in others]
        out.append(Comparison(rec.prompt, rec.responses, rec.ranking, rec.labeler,
                              {**rec.meta, "votes": votes, "voters": [rec.labeler] + others}))
    return out


class PerLabelerRM(ScalarHeadModel):
    """An RM with a reward per training labeler: the SFT trunk and scalar head r, plus Linear(d_model -> L)
    offsets o (zero at the start). forward() gives r + o_l for the labeler in `column` (a (B,) tensor of
    one column per row), or with column None the population's r + mean o: what a new person gets, and what
    every evaluation here reads. score() reads it at the final token, as for any RM."""

    def __init__(self, cfg, labeler_ids):
        super().__init__(cfg)
        self.columns = {lab: i for i, lab in enumerate(labeler_ids)}
        self.offsets = torch.nn.Linear(cfg.n_embd, len(labeler_ids))
        torch.nn.init.zeros_(self.offsets.weight)
        torch.nn.init.zeros_(self.offsets.bias)
        self.column = None

    @classmethod
    def around(cls, rm, labeler_ids):
        """A PerLabelerRM with rm's trunk and head (fresh_rm's wrap)."""
        model = cls(rm.cfg, labeler_ids)
        model.trunk.load_state_dict(rm.trunk.state_dict())
        model.head.load_state_dict(rm.head.state_dict())
        return model

    def population(self):
        """The population's reward r + mean_l o_l as a plain ScalarHeadModel: both are linear in the trunk's
        output, so the mean offset folds into the head (weight w + mean_l W_l, bias b + mean_l b_l)."""
        rm = ScalarHeadModel(self.cfg)
        rm.trunk.load_state_dict(self.trunk.state_dict())
        with torch.no_grad():
            rm.head.weight.copy_(self.head.weight + self.offsets.weight.mean(0, keepdim=True))
            rm.head.bias.copy_(self.head.bias + self.offsets.bias.mean(0, keepdim=True))
        return rm

    def forward(self, idx, mask=None, response_mask=None):
        h = self.trunk(idx, mask)                                              # (B, T, d_model)
        o = self.offsets(h)                                                    # (B, T, L)
        if self.column is None:
            o = o.mean(-1)
        else:
            o = (o * torch.nn.functional.one_hot(self.column, o.shape[-1])[:, None, :]).sum(-1)   # o[b, :, col_b]
        return self.head(h).squeeze(-1) + o


def labeler_rewards(rm, records, labeler_ids, args):
    """train_rm.forward_rewards with each record's responses scored by its labeler's own reward (a
    PerLabelerRM; labeler_ids: one per record)."""
    rm.column = torch.tensor([rm.columns[lab] for rec, lab in zip(records, labeler_ids) for _ in rec.responses])
    try:
        return train_rm.forward_rewards(rm, records, *args)
    finally:
        rm.column = None


def loss_of(way, rm, batch, args):
    """The loss of one step's batch: Bradley-Terry on every pair of each prompt, the pairs oriented
    0 < 1 < ... < K-1 and the target p the chance that the lower index wins (1 or 0 for one ranking)."""
    if way == "per_labeler":   # each vote is a ranking of its own, on its voter's reward
        votes = [(Comparison(rec.prompt, rec.responses, vote, voter, rec.meta), voter)
                 for rec in batch for vote, voter in zip(rec.meta["votes"], rec.meta["voters"])]
        return bradley_terry_loss(*labeler_rewards(rm, [v for v, _ in votes], [lab for _, lab in votes], args))
    r = train_rm.forward_rewards(rm, batch, *args)[0]
    idx_w, idx_l, group = kwise_pairs([list(range(len(rec.responses))) for rec in batch])
    if way in ("one_labeler", "one_labeler_3x"):
        p = [t for rec in batch for t in vote_targets([rec.ranking], len(rec.responses))]
    else:
        p = [t for rec in batch for t in vote_targets(rec.meta["votes"], len(rec.responses))]
        if way == "majority_of_3":
            p = [float(t > 0.5) for t in p]
    return bradley_terry_loss(r, idx_w, idx_l, group, p=torch.tensor(p))


def prob_error(r, eval_records, labeler_a):
    """Mean |sigma(r_w - r_l) - P_A(w > l)| over the held-out pairs, r (M,) the RM's rewards of their
    responses: calibration against the true probability."""
    idx_w, idx_l, group = kwise_pairs([rec.ranking for rec in eval_records])
    flat = [(world.Prompt.from_dict(rec.meta["world_prompt"]), t, f) for rec in eval_records
            for t, f in zip(rec.responses, rec.finished)]
    p_a = torch.tensor([labeler_a.p_prefer(flat[w][0], flat[w][1], flat[l][1], flat[w][2], flat[l][2])
                        for w, l in zip(idx_w.tolist(), idx_l.tolist())])
    return (torch.sigmoid(r[idx_w] - r[idx_l]) - p_a).abs().mean().item()


def each_labelers_rankings(eval_records, labelers, seed):
    """{labeler id: the held-out records ranked afresh by that (training) labeler}."""
    rng = random.Random(seed)
    return {lab.id: [Comparison(rec.prompt, rec.responses, lab.rank(world.Prompt.from_dict(rec.meta["world_prompt"]),
                                                                    rec.responses, rng, finished=rec.finished),
                                lab.id, rec.meta) for rec in eval_records] for lab in labelers}


def _accuracy(r, records):
    idx_w, idx_l, _ = kwise_pairs([rec.ranking for rec in records])
    return pairwise_accuracy(r[idx_w], r[idx_l])


@torch.no_grad()
def accuracy_per_labeler(rm, r, by_labeler, tok, max_new):
    """({labeler id: accuracy of the rewards r (M,) against that labeler's rankings of the held-out responses},
    for a PerLabelerRM {id: accuracy of that labeler's own reward r + o_l}, else None)."""
    out = {str(i): _accuracy(r, recs) for i, recs in by_labeler.items()}
    if not isinstance(rm, PerLabelerRM):
        return out, None
    rm.eval()
    args = (tok, max_new, torch.device("cpu"), "float32")
    own = {i: torch.cat([labeler_rewards(rm, recs[at:at + 32], [i] * len(recs[at:at + 32]), args)[0]
                         for at in range(0, len(recs), 32)]) for i, recs in by_labeler.items()}
    return out, {str(i): _accuracy(own[i], recs) for i, recs in by_labeler.items()}


def taste_ceiling(eval_records, labelers, by_labeler):
    """How much a perfect model of each person could gain over a perfect model of the group: {labeler id:
    {"own": accuracy of that labeler's own utility u_l against their rankings of the held-out responses,
    "population": of the mean utility of all these labelers}} (no training: the world's utilities)."""
    flat = [(world.Prompt.from_dict(rec.meta["world_prompt"]), t, f) for rec in eval_records
            for t, f in zip(rec.responses, rec.finished)]
    u = torch.tensor([[float(lab.utility(p, t, f)) for lab in labelers] for p, t, f in flat])   # (M, L)
    return {str(lab.id): {"own": _accuracy(u[:, i], by_labeler[lab.id]),
                          "population": _accuracy(u.mean(1), by_labeler[lab.id])} for i, lab in enumerate(labelers)}


def best_of_n_pool(sft, tok, n, n_prompts, seed, max_new):
    """n SFT samples per test prompt plus one baseline sample: (prompts, texts, finished, token lists),
    prompt i's baseline at i * (n + 1), its candidates after it."""
    prompts = world.make_split("test", n_prompts, seed=seed)
    flat = [p.text for p in prompts for _ in range(n + 1)]
    texts, finished, token_lists = sample_responses(sft, tok, flat, max_new,
                                                    generator=torch.Generator().manual_seed(seed), device="cpu")
    return prompts, texts, finished, token_lists


def best_of_n_win_rate(rm, tok, pool, n):
    """Gold win rate of the RM's favourite of each prompt's n candidates against its baseline sample."""
    prompts, texts, finished, token_lists = pool
    flat = [p.text for p in prompts for _ in range(n + 1)]
    r = rm_scores(rm, tok, flat, token_lists, finished, -1e9, torch.device("cpu")).view(len(prompts), n + 1)
    wins = []
    for i, p in enumerate(prompts):
        base, pick = i * (n + 1), i * (n + 1) + 1 + int(r[i, 1:].argmax())
        wins.append(world.gold_compare(p, texts[pick], texts[base], finished[pick], finished[base]))
    return float(np.mean(wins))


def save_for_ppo(rm, path, records, tok, max_new, cfg, steps):
    """rm (a PerLabelerRM: its population reward) as train_rm.py saves an RM, normalised on the SFT samples
    of `records`."""
    rm = rm.population() if isinstance(rm, PerLabelerRM) else rm
    args = (tok, max_new, torch.device("cpu"), "float32")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    sft_ckpt = load_checkpoint(cfg.sft_ckpt, "sft", tok)
    save_checkpoint(path, train_rm.rm_checkpoint(rm, records, args, asdict(cfg), steps, sft_ckpt))


def downstream(cfg, way):
    """What PPO makes of the saved RM of `way`: train_ppo.py's test-set gold win rate over SFT, KL, gold gain."""
    rm_ckpt = os.path.join(cfg.out_dir, f"rm_{way}", "ckpt.pt")
    ppo_dir = os.path.join(cfg.out_dir, f"ppo_{way}")
    ppo = stage("ppo", ppo_dir + ".log", cfg.ppo_flags, sft_ckpt=cfg.sft_ckpt, rm_ckpt=rm_ckpt, out_dir=ppo_dir,
                threads=cfg.ppo_threads)
    return {"ppo_win_rate": ppo["ppo"]["win_rate_vs_sft"], "ppo_kl": ppo["ppo"]["kl"],
            "ppo_gold_gain": ppo["ppo"]["gold"] - ppo["sft"]["gold"]}


def minimal_pairs(cfg, way):
    """what_the_rm_sees.py's minimal pairs of the saved RM of `way`: the share each family's RM gets right."""
    rm_dir = os.path.join(cfg.out_dir, f"rm_{way}")
    seen = what_the_rm_sees.main([f"--sft_ckpt={cfg.sft_ckpt}", f"--rm_ckpt={rm_dir}/ckpt.pt",
                                  f"--threads={cfg.threads}", f"--out={rm_dir}/what_the_rm_sees.json",
                                  *shlex.split(cfg.see_flags)])
    minimal = {fam: v["rm"] for fam, v in seen["minimal_pairs"].items()}
    return {"minimal_pairs": minimal, "minimal_pairs_mean": sum(minimal.values()) / len(minimal) if minimal else None}


def make_figure(res, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 4))
    x = np.arange(len(res["runs"]))
    rows = [("accuracy", "vs held-out labeler A"), ("gold_accuracy", "vs gold")]
    if res["config"]["best_of"]:
        rows.append(("best_of_n_win_rate", f"best-of-{res['config']['best_of']} gold win rate"))
    if all("ppo_win_rate" in run for run in res["runs"]):   # --ppo=all
        rows.append(("ppo_win_rate", "PPO's gold win rate over SFT"))
    width = 0.8 / len(rows)
    for k, (key, label) in enumerate(rows):
        bars = ax.bar(x + (k - (len(rows) - 1) / 2) * width, [run[key] for run in res["runs"]], width, label=label)
        ax.bar_label(bars, fmt="%.3f", fontsize=7)
    agree = res["runs"][0]["inter_labeler_agreement"]
    ax.axhline(agree, color="gray", ls="--", lw=1, label=f"labeler B vs A ({agree:.3f})")
    ax.axhline(0.5, color="gray", ls=":", lw=1)
    ax.set_xticks(x, [f"{run['way']}\n({run['labellings']} rankings)" for run in res["runs"]], fontsize=8)
    ax.set(ylim=(0.45, 0.85), ylabel="rate",
           title="One labeler, a majority of three, their soft vote, or a reward per labeler")
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv):
    cfg = parse_config(VotesConfig, argv)
    n = cfg.n_prompts
    tok, sft, max_new, rankings, eval_records = load_rm_study(cfg, n_records=3 * n)   # one_labeler_3x's
    require(cfg, "n_prompts", len(rankings) == 3 * n,
            f"one_labeler_3x needs 3 x {n} rankings; {cfg.comparisons} has {len(rankings)}")
    labelers = world.make_labelers(cfg.n_labelers, seed=cfg.seed)
    voted = relabel(rankings[:n], labelers[:-2], 3, cfg.seed)
    pairs = [t for rec in voted for t in vote_targets(rec.meta["votes"], len(rec.responses))]
    n_split = sum(0 < t < 1 for t in pairs)
    print(f"{len(voted)} prompts ranked by three labelers: they split on {n_split / len(pairs):.1%} of "
          f"{len(pairs)} pairs; {len(eval_records)} held-out rankings")
    data = {"one_labeler": rankings[:n], "one_labeler_3x": rankings,
            "majority_of_3": voted, "soft_vote": voted, "per_labeler": voted}
    by_labeler = each_labelers_rankings(eval_records, labelers[:-2], cfg.seed + 1)
    ceiling = taste_ceiling(eval_records, labelers[:-2], by_labeler)
    print("a perfect model of each training labeler against one of the group, on their held-out rankings: "
          + ", ".join(f"{i} {c['own']:.3f}/{c['population']:.3f}" for i, c in ceiling.items()))
    pool = best_of_n_pool(sft, tok, cfg.best_of, cfg.n_test_prompts, cfg.seed, max_new) if cfg.best_of else None
    runs = []
    for way in WAYS:
        loss = lambda rm, batch, a, way=way: loss_of(way, rm, batch, a)
        wrap = (lambda rm: PerLabelerRM.around(rm, [lab.id for lab in labelers[:-2]])) if way == "per_labeler" else None
        rm, r, run = train_study_rm(way, loss, sft, data[way], eval_records, labelers[-2:], tok, cfg, max_new, wrap)
        run["labellings"] = len(data[way]) * (1 if way.startswith("one_labeler") else 3)
        run["accuracy_per_training_labeler"], own = accuracy_per_labeler(rm, r, by_labeler, tok, max_new)
        if own:
            run["own_reward_accuracy"] = own
        run["prob_error"] = prob_error(r, eval_records, labelers[-2])
        if pool:
            run["best_of_n_win_rate"] = best_of_n_win_rate(rm, tok, pool, cfg.best_of)
        print(f"  {'':14s} prob_error {run['prob_error']:.3f}"
              + (f", best-of-{cfg.best_of} win rate {run['best_of_n_win_rate']:.3f}" if pool else "")
              + f"; against the training labelers {np.mean(list(run['accuracy_per_training_labeler'].values())):.3f}"
              + (f" (each one's own reward {np.mean(list(own.values())):.3f})" if own else ""), flush=True)
        if way in cfg.ppo_ways():
            save_for_ppo(rm, os.path.join(cfg.out_dir, f"rm_{way}", "ckpt.pt"), rankings[:n], tok, max_new, cfg,
                         run["steps"])
        runs.append(run)
    optimised = [run for run in runs if run["way"] in cfg.ppo_ways()]
    if optimised:
        for run in optimised:
            run.update(minimal_pairs(cfg, run["way"]))
        with ThreadPoolExecutor(cfg.jobs) as pool:   # each run a process of its own
            for run, got in zip(optimised, pool.map(lambda run: downstream(cfg, run["way"]), optimised)):
                run.update(got)
        print(f"\n  {'RM':14s} {'minimal pairs':>13s} {'PPO win':>8s} {'PPO KL':>7s}")
        for run in optimised:
            mp = run["minimal_pairs_mean"]
            print(f"  {run['way']:14s} {'n/a' if mp is None else f'{mp:.3f}':>13s} {run['ppo_win_rate']:8.3f} "
                  f"{run['ppo_kl']:7.2f}")
    res = {"config": asdict(cfg), "n_prompts": cfg.n_prompts, "n_pairs_voted": len(pairs),
           "split_vote_rate": n_split / len(pairs), "taste_ceiling": ceiling, "runs": runs}
    write_results(res, cfg.out_dir, "labeler_votes", make_figure, cfg.publish)
    return res


if __name__ == "__main__":
    main(sys.argv[1:])
