"""
How much better than SFT can a policy get by pleasing a judge? Best-of-n against four judges.

PPO and best-of-n both push the policy towards whatever the reward model scores high. This experiment
asks how far that can go before any RL is run, and whose fault the shortfall is. For each held-out test
prompt it draws n SFT samples, lets each judge pick one, and has the gold labeler compare the pick with
one fresh SFT sample (ties count half: train_ppo.py's win rate). The judges:

    gold      the true objective: the best that choosing among these n samples can ever do
    labelers  the mean utility of train_rm.py's training labelers (gold + their length, format and
              agreement biases, no noise): a PERFECT reward model of the people who labelled the data
    rm        the trained reward model: best-of-n as train_ppo.py reports it
    length    the longest answer: a reward model that learned the length bias and nothing else

gold minus labelers is what the labelers' biases cost; labelers minus rm is what the reward model failed
to learn from them. Lesson 05 reads the table.

    python -m nanorm.experiments.headroom          # after train_sft.py and train_rm.py, ~40 seconds
    python -m nanorm.experiments.headroom --candidates=demonstrations    # no model, a few seconds

--candidates=demonstrations draws the n candidates and the baseline from the world's own demonstrations
(what a perfect SFT model would write; the limit a bigger SFT model approaches) instead of SFT samples.
It needs no checkpoint, so it has no rm judge, and it is the quick dial for calibrating the labelers:
how much of gold's headroom over a random pick does a perfect model of these labelers keep?
"""

import random
import sys
from dataclasses import asdict, dataclass

import numpy as np
import torch

from nanorm import world
from nanorm.checkpoint import write_json
from nanorm.config import at_least, at_most_prompts, one_of, parse_config
from nanorm.data import sample_responses
from nanorm.evaluate import rm_scores
from nanorm.experiments.common import load_sft_and_rm
from nanorm.tokenizer import DEFAULT_RANKS

JUDGES = ("gold", "labelers", "rm", "length")


@dataclass
class HeadroomConfig:
    sft_ckpt: str = "out/sft/ckpt.pt"
    rm_ckpt: str = "out/rm/ckpt.pt"
    tokenizer: str = DEFAULT_RANKS
    n_prompts: int = 500          # held-out test prompts (train_ppo.py's win rate uses 500)
    n: int = 16                   # samples per prompt each judge chooses from (train_ppo.py's best-of-16)
    n_labelers: int = 8           # train_rm.py's labelers: all but the last two labelled its training data
    labeler_seed: int = 1337      # train_rm.py's --seed (it draws its labelers with that seed)
    seed: int = 0
    threads: int = 0              # torch CPU threads; 0 = torch's default
    device: str = "cpu"
    candidates: str = "sft"       # sft: samples of the SFT model | demonstrations: the world's own (no model)
    out: str = "out/experiments/headroom.json"   # the table, as JSON

    def check(self):
        at_least(self, 1, "n_prompts", "n")
        one_of(self, "candidates", ("sft", "demonstrations"))
        at_least(self, 3, "n_labelers")   # at least one training labeler beside the two held out
        at_most_prompts(self, n_prompts="test")


def judge_scores(judge, prompt, texts, finished, labelers=(), rm=None):
    """One judge's score for each of a prompt's candidate responses (higher = chosen).

    rm: the reward model's scores of these candidates, already computed (truncated ones penalised)."""
    if judge == "gold":
        return [world.gold(prompt, t, d) for t, d in zip(texts, finished)]
    if judge == "labelers":
        return [float(np.mean([lab.utility(prompt, t, d) for lab in labelers])) for t, d in zip(texts, finished)]
    if judge == "rm":
        return list(rm)
    if judge == "length":
        return [len(world.words(t)) for t in texts]
    raise ValueError(f"unknown judge {judge!r}; expected one of {JUDGES}")


def win_rates(prompts, candidates, cand_finished, baseline, base_finished, labelers, rm):
    """{judge: [gold_compare(pick, baseline) per prompt]}: candidates[i] holds prompt i's n responses,
    rm[i] their RM scores; the first-listed candidate wins a tie in a judge's score."""
    wins = {j: [] for j in JUDGES}
    for i, p in enumerate(prompts):
        for j in JUDGES:
            s = judge_scores(j, p, candidates[i], cand_finished[i], labelers, rm[i])
            k = int(np.argmax(s))
            wins[j].append(world.gold_compare(p, candidates[i][k], baseline[i], cand_finished[i][k], base_finished[i]))
    return wins


def main(argv):
    cfg = parse_config(HeadroomConfig, argv)
    labelers = world.make_labelers(cfg.n_labelers, seed=cfg.labeler_seed)[:-2]   # the training labelers
    prompts = world.make_split("test", cfg.n_prompts, seed=cfg.seed)
    n = cfg.n + 1   # per prompt: the baseline response, then the n candidates
    flat = [p for p in prompts for _ in range(n)]
    if cfg.candidates == "sft":
        device, tok, sft, rm = load_sft_and_rm(cfg)
        texts, finished, token_lists = sample_responses(sft, tok, [p.text for p in flat], 48, device=device,
                                                        generator=torch.Generator(device).manual_seed(cfg.seed))
        scores = rm_scores(rm, tok, [p.text for p in flat], token_lists, finished, -3.0, device).tolist()
        judges = JUDGES
    else:   # what a perfect SFT model would write: no model, no RM judge
        rng = random.Random(cfg.seed)
        texts, finished = [world.demonstration(p, rng) for p in flat], [True] * len(flat)
        scores, judges = [0.0] * len(flat), tuple(j for j in JUDGES if j != "rm")
    cands = [slice(i * n + 1, (i + 1) * n) for i in range(len(prompts))]   # prompt i's n candidates
    wins = win_rates(prompts, [texts[c] for c in cands], [finished[c] for c in cands], texts[::n], finished[::n],
                     labelers, [scores[c] for c in cands])
    # a random pick among the candidates (the first one: they are independent draws) is the chance level
    wins["random"] = [world.gold_compare(p, texts[c][0], texts[i * n], finished[c][0], finished[i * n])
                      for i, (p, c) in enumerate(zip(prompts, cands))]
    judges = (*judges, "random")

    what = "SFT samples" if cfg.candidates == "sft" else "demonstrations"
    print(f"best-of-{cfg.n} of {what}, picked by each judge; gold win rate of the pick against one more "
          f"({len(prompts)} test prompts, ties half):")
    print(f"  {'judge':9s} {'all':>6s} " + " ".join(f"{f:>10s}" for f in world.FAMILIES))
    res = {"config": asdict(cfg), "n_prompts": len(prompts), "win_rate_vs_sft": {}}
    for j in judges:
        per = [float(np.mean([w for w, p in zip(wins[j], prompts) if p.family == f])) for f in world.FAMILIES]
        print(f"  {j:9s} {np.mean(wins[j]):6.3f} " + " ".join(f"{v:10.3f}" for v in per))
        res["win_rate_vs_sft"][j] = {"all": float(np.mean(wins[j])), **dict(zip(world.FAMILIES, per))}
    wr = res["win_rate_vs_sft"]
    res["labelers_share_of_gold_headroom"] = ((wr["labelers"]["all"] - 0.5) / (wr["gold"]["all"] - 0.5)
                                              if wr["gold"]["all"] > 0.5 else None)   # (L - 0.5) / (G - 0.5)
    if res["labelers_share_of_gold_headroom"] is not None:
        print(f"  the labelers keep (L - 0.5) / (G - 0.5) = {res['labelers_share_of_gold_headroom']:.2f} "
              f"of gold's headroom")
    write_json(cfg.out, res)
    print(f"wrote {cfg.out}")
    return res


if __name__ == "__main__":
    main(sys.argv[1:])
