"""
Why rankings? The same labelers, the same responses, the same labelling budget: scores 1 to 10 or a ranking.

The document says rankings are easier for people than absolute scores. People differ in where they put
"a 7" and in how far apart they spread their marks, and a coarse scale cannot say which of two good
answers is better. This experiment gives the world's labelers a scoring mode and trains reward models
on each kind of label, from the same SFT trunk, with the same optimiser and the same steps.

One labelling of a prompt's K responses (the first --n_prompts rankings of out/rm/comparisons.jsonl,
their responses and their labeler) is ONE draw of that labeler's noisy utilities,
    v_i = u_i + temperature * g_i,  g_i ~ Gumbel(0, 1)
(sorting v is exactly the labeler's Plackett-Luce ranking, nanorm/world/labelers.py::Labeler.rank), read
two ways:
    rankings         the order of v (what train_rm.py collects);
    scores           round(5.5 + scale_l * 3 * v_i + offset_l), clipped to 1..10, where each labeler has its
                     own offset_l ~ N(0, --offset_sd) and scale_l ~ LogNormal(0, --scale_sd): the
                     labelers' calibration differs, as people's does.
Both kinds carry the same noise; what the scores add is the labelers' differing calibration and the
scale's coarseness. Three RMs:
    bt_rankings      Bradley-Terry on the rankings' C(K,2) pairs (train_rm.py's loss)
    mse_scores       regression of the reward on the score, (score - 5.5) / 3 (mean squared error)
    bt_scores        Bradley-Terry on the pairs the scores imply; two equal scores are a tie (p = 0.5)
bt_scores against mse_scores separates the loss from the labels; bt_scores against bt_rankings is
what a score loses as information. Each is evaluated on train_rm.py's held-out rankings (held-out
labelers, out/rm/eval_comparisons.jsonl): accuracy against labeler A, inter-labeler agreement, gold.

    python -m nanorm.experiments.scores_vs_rankings          # after train_sft.py and train_rm.py, ~4 minutes
    python -m nanorm.experiments.scores_vs_rankings --publish=true   # also copy the figure to lessons/figures/

Writes out/scores_vs_rankings/scores_vs_rankings.json and .png.
"""

import math
import random
import sys
from dataclasses import asdict, dataclass

import numpy as np
import torch

import train_rm
from nanorm import world
from nanorm.config import at_least, parse_config
from nanorm.experiments.common import load_rm_study, train_study_rm, write_results
from nanorm.prefdata import Comparison
from nanorm.reward import bradley_terry_loss, kwise_pairs, ranking_to_pairs
from nanorm.tokenizer import DEFAULT_RANKS

WAYS = ("bt_rankings", "mse_scores", "bt_scores")


@dataclass
class ScoresConfig:
    comparisons: str = "out/rm/comparisons.jsonl"        # the default train_rm.py run's rankings
    eval_comparisons: str = "out/rm/eval_comparisons.jsonl"
    sft_ckpt: str = "out/sft/ckpt.pt"
    tokenizer: str = DEFAULT_RANKS
    out_dir: str = "out/scores_vs_rankings"
    n_prompts: int = 600              # prompts labelled (each K = 4..9 responses), once each
    n_labelers: int = 8               # train_rm.py's labelers (its --seed draws them), the last two held out
    offset_sd: float = 1.0            # spread of the labelers' offsets, in score points
    scale_sd: float = 0.3             # log-normal spread of the labelers' scales
    prompts_per_batch: int = 2        # train_rm.py's default
    epochs: int = 1
    lr: float = 3e-4                  # train_rm.py's, with its cosine decay to lr / 10
    seed: int = 1337                  # train_rm.py's --seed: its labelers
    threads: int = 0
    publish: bool = False

    def check(self):
        at_least(self, 1, "n_prompts", "prompts_per_batch", "epochs", "n_labelers")
        at_least(self, 0, "offset_sd", "scale_sd")


def score_scale(labelers, offset_sd, scale_sd, seed):
    """{labeler id: (offset, scale)}: how each labeler uses the 1-to-10 scale."""
    rng = np.random.default_rng(seed)
    return {lab.id: (float(rng.normal(0, offset_sd)), float(rng.lognormal(0, scale_sd))) for lab in labelers}


def label_both_ways(rec, labeler, calibration, rng):
    """One noisy reading of a prompt's responses by one labeler, as a ranking and as scores 1..10."""
    p = world.Prompt.from_dict(rec.meta["world_prompt"])
    v = [labeler.utility(p, t, d) - labeler.temperature * math.log(-math.log(rng.random() or 1e-300))
         for t, d in zip(rec.responses, rec.finished)]                       # u + T * Gumbel(0, 1)
    ranking = sorted(range(len(v)), key=lambda i: -v[i])
    offset, scale = calibration[labeler.id]
    scores = [min(10, max(1, round(5.5 + 3 * scale * x + offset))) for x in v]
    return ranking, scores


def relabel(records, labelers, calibration, seed):
    """The records with rankings redrawn, and each one's scores (meta["scores"])."""
    rng = random.Random(seed)
    by_id = {lab.id: lab for lab in labelers}
    out = []
    for rec in records:
        ranking, scores = label_both_ways(rec, by_id[rec.labeler], calibration, rng)
        out.append(Comparison(rec.prompt, rec.responses, ranking, rec.labeler, {**rec.meta, "scores": scores}))
    return out


def score_ranking(scores):
    """The responses ordered by score, best first (equal scores keep their order), and the soft target of
    each of its pairs in ranking_to_pairs order: 1, or 0.5 where the two scores are equal (a tie)."""
    ranking = sorted(range(len(scores)), key=lambda i: -scores[i])
    return ranking, [0.5 if scores[w] == scores[l] else 1.0 for w, l in ranking_to_pairs(ranking)]


def loss_of(way, rm, batch, args):
    """The loss of one step's batch of records, for one way of training."""
    if way == "mse_scores":
        r = train_rm.forward_rewards(rm, batch, *args)[0]
        target = torch.tensor([(s - 5.5) / 3 for rec in batch for s in rec.meta["scores"]])
        return torch.mean((r - target) ** 2)
    if way == "bt_scores":   # every pair of a prompt's responses, oriented by score, ties at p = 0.5
        r = train_rm.forward_rewards(rm, batch, *args)[0]
        ranked = [score_ranking(rec.meta["scores"]) for rec in batch]
        idx_w, idx_l, group = kwise_pairs([ranking for ranking, _ in ranked])
        return bradley_terry_loss(r, idx_w, idx_l, group, p=torch.tensor([t for _, ts in ranked for t in ts]))
    r, idx_w, idx_l, group = train_rm.forward_rewards(rm, batch, *args)
    return bradley_terry_loss(r, idx_w, idx_l, group)


def train(way, sft, records, eval_records, heldout, tok, cfg, max_new):
    """One RM from the SFT trunk, trained `way`; its held-out report (evaluate_rm)."""
    loss = lambda rm, batch, args: loss_of(way, rm, batch, args)
    return train_study_rm(way, loss, sft, records, eval_records, heldout, tok, cfg, max_new)[2]


def make_figure(res, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4))
    x = np.arange(len(res["runs"]))
    for k, (key, label) in enumerate([("accuracy", "vs held-out labeler A"), ("gold_accuracy", "vs gold")]):
        vals = [run[key] for run in res["runs"]]
        bars = ax.bar(x + (k - 0.5) * 0.38, vals, 0.38, label=label)
        ax.bar_label(bars, fmt="%.3f", fontsize=8)
    agree = res["runs"][0]["inter_labeler_agreement"]
    ax.axhline(agree, color="gray", ls="--", lw=1, label=f"labeler B vs A ({agree:.3f})")
    ax.axhline(0.5, color="gray", ls=":", lw=1)
    ax.set_xticks(x, [run["way"] for run in res["runs"]])
    ax.set(ylim=(0.45, 0.85), ylabel="held-out pairwise accuracy",
           title=f"The same {res['n_prompts']} labellings as rankings or as scores 1-10")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv):
    cfg = parse_config(ScoresConfig, argv)
    tok, sft, max_new, rankings, eval_records = load_rm_study(cfg)
    labelers = world.make_labelers(cfg.n_labelers, seed=cfg.seed)
    calibration = score_scale(labelers, cfg.offset_sd, cfg.scale_sd, cfg.seed)
    records = relabel(rankings, labelers, calibration, cfg.seed)
    scores = [s for rec in records for s in rec.meta["scores"]]
    n_pairs = sum(math.comb(len(rec.responses), 2) for rec in records)
    ties = sum(t == 0.5 for rec in records for t in score_ranking(rec.meta["scores"])[1])
    print(f"{len(records)} prompts labelled ({len(scores)} responses, {n_pairs} pairs); the scores tie on "
          f"{ties / n_pairs:.1%} of the pairs; {len(eval_records)} held-out rankings")
    res = {"config": asdict(cfg), "n_prompts": len(records), "n_pairs": n_pairs, "score_tie_rate": ties / n_pairs,
           "score_histogram": {s: scores.count(s) for s in range(1, 11)},
           "calibration": {str(k): v for k, v in calibration.items()},
           "runs": [train(way, sft, records, eval_records, labelers[-2:], tok, cfg, max_new) for way in WAYS]}
    write_results(res, cfg.out_dir, "scores_vs_rankings", make_figure, cfg.publish)
    return res


if __name__ == "__main__":
    main(sys.argv[1:])
