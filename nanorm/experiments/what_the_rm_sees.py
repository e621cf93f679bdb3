"""
What the reward model can and cannot see: its accuracy split by the kind of pair.

Three tables explain most of nanorm's default results (lesson 04):
  1. how often the SFT policy's greedy answer is correct, per family (on train and test prompts),
  2. the RM's expected accuracy against held-out labeler A on two kinds of pairs of SFT samples:
       style pairs: both answers equally correct, so only length, formatting, agreement... differ;
       fact pairs : exactly one answer is correct.
     "Expected" uses the labeler's choice probability p instead of a sampled label (less noise). Each
     kind is shown beside the expected agreement of held-out labelers A and B on the same pairs (the
     bar train_rm.py compares the RM with) and the Bayes ceiling mean max(p, 1 - p). Pairs of identical
     texts are dropped.
  3. for the fact pairs, how often the RM scores the correct answer higher, split by the wrong answer's
     mistake (a wrong sum said bare or as a full statement; another person's name or another occasion),
     and not against a labeler: these are the facts gold and every labeler agree on. Beside it, the same
     for the SFT model's own likelihood (the mean log-prob per response token): where the SFT column is
     well above the RM's, the trunk the RM started from holds the fact and the RM did not learn to read it.
  4. minimal pairs: the SFT model's own correct greedy answer against the same text with ONE fact changed
     (another number, another name, an item of another category, the opposite verdict; minimal_edit).
     Nothing else differs, so no length or style cue can stand in for the check: at 0.5 the RM does
     not check that fact at all, and table 3's accuracy came from things that travel with mistakes.
     Held-out labeler A's expected preference on the same pairs is printed beside it.

    python -m nanorm.experiments.what_the_rm_sees          # after train_sft.py and train_rm.py, ~15 seconds
"""

import random
import re
import sys
from dataclasses import asdict, dataclass

import numpy as np
import torch

from nanorm import world
from nanorm.checkpoint import write_json
from nanorm.config import at_least, at_most_prompts, parse_config
from nanorm.data import sample_responses
from nanorm.evaluate import mean_logprob, rm_scores
from nanorm.experiments.common import load_sft_and_rm
from nanorm.tokenizer import DEFAULT_RANKS


@dataclass
class SeeConfig:
    sft_ckpt: str = "out/sft/ckpt.pt"
    rm_ckpt: str = "out/rm/ckpt.pt"
    tokenizer: str = DEFAULT_RANKS
    n_prompts: int = 200          # validation prompts for the pair analysis
    k: int = 6                    # SFT samples per prompt (all C(k,2) pairs are analysed)
    n_accuracy_prompts: int = 400 # prompts per split for the greedy-accuracy table
    labeler_seed: int = 1337      # train_rm.py's labelers (its held-out labeler A is the second to last)
    seed: int = 0
    threads: int = 1              # torch CPU threads; 0 = torch's default
    device: str = "cpu"           # cpu (the numbers quoted in lesson 04) | cuda (a bigger model's checkpoints)
    out: str = "out/experiments/what_the_rm_sees.json"   # every table, as JSON

    def check(self):
        at_least(self, 1, "n_prompts", "n_accuracy_prompts")
        at_least(self, 2, "k")
        at_most_prompts(self, n_prompts="val", n_accuracy_prompts="test")   # (the test split is smaller than train)


def main(argv):
    cfg = parse_config(SeeConfig, argv)
    device, tok, sft, rm = load_sft_and_rm(cfg)

    res = {"config": asdict(cfg), "greedy_correct": {}, "pair_kinds": {}, "fact_pairs_by_mistake": {},
           "minimal_pairs": {}}
    print("SFT greedy answers that are correct (world.features 'correct'):")
    greedy = []   # (prompt, greedy answer) of both splits, for table 4
    for split in ("train", "test"):
        prompts = world.make_split(split, cfg.n_accuracy_prompts, seed=3)
        texts, _, _ = sample_responses(sft, tok, [p.text for p in prompts], 48, temperature=0.0,
                                          device=device)
        greedy += list(zip(prompts, texts))
        for fam in world.FAMILIES:
            c = [bool(world.features(p, t)["correct"]) for p, t in zip(prompts, texts) if p.family == fam]
            print(f"  {split:5s} {fam:10s} n={len(c):4d}  {np.mean(c):.3f}")
            res["greedy_correct"].setdefault(split, {})[fam] = {"n": len(c), "correct": float(np.mean(c))}

    labeler, other = world.make_labelers(8, seed=cfg.labeler_seed)[-2:]   # held-out labelers A and B
    prompts = world.make_split("val", cfg.n_prompts, seed=5)
    flat = [p for p in prompts for _ in range(cfg.k)]
    texts, finished, token_lists = sample_responses(sft, tok, [p.text for p in flat], 48,
                                                    generator=torch.Generator(device).manual_seed(cfg.seed),
                                                    device=device)
    r = rm_scores(rm, tok, [p.text for p in flat], token_lists, finished, -3.0, device).numpy()
    lp = mean_logprob(sft, tok, [p.text for p in flat], token_lists, device).numpy()   # the SFT model's judgement
    stats, mistakes = {}, {}
    for i, p in enumerate(prompts):
        for a in range(cfg.k):
            for b in range(a + 1, cfg.k):
                ia, ib = i * cfg.k + a, i * cfg.k + b
                if texts[ia] == texts[ib]:
                    continue
                pa = labeler.p_prefer(p, texts[ia], texts[ib], finished[ia], finished[ib])
                correct_a, correct_b = (world.features(p, texts[j])["correct"] for j in (ia, ib))
                same = correct_a == correct_b
                kind = f"{p.family:10s} {'style' if same else 'fact '}"
                acc = pa if r[ia] > r[ib] else 1 - pa
                agree = world.agreement(labeler, other, p, texts[ia], texts[ib], finished[ia], finished[ib])
                stats.setdefault(kind, []).append((acc, agree, max(pa, 1 - pa)))
                if not same:   # a fact pair: does the RM score the correct answer higher?
                    good, bad = (ia, ib) if correct_a else (ib, ia)
                    mistakes.setdefault(mistake_kind(p, texts[bad]), []).append((r[good] > r[bad], lp[good] > lp[bad]))
    print(f"\nRM expected accuracy vs held-out labeler {labeler.id}, by pair kind "
          f"({cfg.n_prompts} validation prompts x {cfg.k} SFT samples):")
    print(f"  {'family':10s} {'kind':5s} {'pairs':>6s} {'RM':>6s} {'A vs B':>7s} {'ceiling':>8s}")
    stats["all"] = [row for rows in stats.values() for row in rows]
    for kind, v in sorted(stats.items(), key=lambda kv: kv[0] == "all"):
        v = np.array(v)
        print(f"  {kind:16s} {len(v):6d} {v[:, 0].mean():6.3f} {v[:, 1].mean():7.3f} {v[:, 2].mean():8.3f}")
        res["pair_kinds"][" ".join(kind.split())] = {"n": len(v), "rm": v[:, 0].mean(), "a_vs_b": v[:, 1].mean(),
                                                     "ceiling": v[:, 2].mean()}
    print("\nFact pairs by the wrong answer's mistake: how often the RM scores the correct answer higher, and")
    print("how often the SFT model finds it more likely (mean log-prob per token):")
    print(f"  {'mistake':40s} {'pairs':>5s}  {'RM':>6s} {'SFT':>6s}")
    for kind, v in sorted(mistakes.items()):
        v = np.array(v, dtype=float)
        print(f"  {kind:40s} {len(v):5d}  {v[:, 0].mean():6.3f} {v[:, 1].mean():6.3f}")
        res["fact_pairs_by_mistake"][kind] = {"n": len(v), "rm_prefers_correct": float(v[:, 0].mean()),
                                              "sft_likelihood_prefers_correct": float(v[:, 1].mean())}

    # 4. minimal pairs: the greedy answers of table 1 (both splits), where correct, against one edit each
    rng, pairs = random.Random(cfg.seed), []
    for p, t in greedy:
        edited = world.minimal_edit(p, t, rng) if world.features(p, t)["correct"] else None
        if edited is not None:
            pairs.append((p, t, edited))
    if not pairs:
        print("\nMinimal pairs: none (no greedy answer was correct, so there is nothing to edit)")
        return save(res, cfg.out)
    flat_p = [p.text for p, _, _ in pairs for _ in range(2)]
    flat_t = [tok.encode_response(x) for _, t, e in pairs for x in (t, e)]
    r = rm_scores(rm, tok, flat_p, flat_t, [True] * len(flat_t), -3.0, device).view(-1, 2)
    print("\nMinimal pairs: a correct greedy answer vs the same text with one fact changed; how often the RM")
    print("scores the correct one higher, and labeler A's expected preference for it:")
    for fam in world.FAMILIES:
        rows = [i for i, (p, _, _) in enumerate(pairs) if p.family == fam]
        if rows:
            rm_right = (r[rows, 0] > r[rows, 1]).float().mean().item()
            a_right = np.mean([labeler.p_prefer(*pairs[i]) for i in rows])
            print(f"  {fam:10s} {len(rows):4d} pairs  RM {rm_right:.3f}  labeler A {a_right:.3f}  "
                  f"e.g. {pairs[rows[0]][1]!r} vs {pairs[rows[0]][2]!r}")
            res["minimal_pairs"][fam] = {"n": len(rows), "rm": rm_right, "labeler_a": float(a_right),
                                         "example": list(pairs[rows[0]][1:])}
    for direction, got in claim_directions(pairs, (r[:, 0] > r[:, 1]).tolist()).items():
        print(f"  claim, the edit {direction.split('_')[1]} with the user: {got['n']:4d} pairs  RM {got['rm']:.3f}")
        res["minimal_pairs"]["claim"][direction] = got
    return save(res, cfg.out)


def claim_directions(pairs, right):
    """The claim pairs (prompt, correct text, edited text) split by the edit's direction: the verdict
    flipped to agree with the user, or to disagree; right[i]: the RM preferred pair i's correct text.
    Returns {"edit_agrees" | "edit_disagrees": {"n", "rm": the share the RM got right}} (present ones only)."""
    out = {}
    for direction, agrees in (("edit_agrees", True), ("edit_disagrees", False)):
        some = [ok for (p, _, e), ok in zip(pairs, right)
                if p.family == "claim" and bool(world.features(p, e)["agrees"]) == agrees]
        if some:
            out[direction] = {"n": len(some), "rm": sum(some) / len(some)}
    return out


def save(res, path):
    """Write the tables as JSON (path printed) and return them."""
    write_json(path, res)
    print(f"\nwrote {path}")
    return res


def mistake_kind(prompt, wrong):
    """A coarse label for what is wrong with a wrong answer (arithmetic and open notes are split)."""
    if prompt.family == "arithmetic":
        restated = re.search(r"\d+ (plus|minus) \d+ (is|equals) \d+", wrong.replace("*", "")) is not None
        return "arithmetic: states 'a op b is c'" if restated else "arithmetic: number only"
    if prompt.family == "open":
        names = set(world.words(wrong)) & set(world.NAMES)
        return "open: another name" if names - {prompt.info["name"]} else "open: wrong occasion, or no note"
    return f"{prompt.family}: any"


if __name__ == "__main__":
    main(sys.argv[1:])
