"""
Can the reward model learn to check a fact? Teach it with contrast pairs, and see what that buys.

what_the_rm_sees's minimal-pair table shows the default RM at about chance when a correct answer and the
same text with one fact changed are put side by side: from 26k ordinary comparisons it learned what
travels with mistakes (length, junk), not the check itself. This experiment adds a second kind of
comparison to train_rm.py's collected rankings. For up to `per_ranking` correct answers of each ranking
it writes a copy with one fact changed (nanorm/experiments/common.py::minimal_edit: the edit a careful
labeler makes to build a test question) and has the ranking's own labeler compare the two. Each contrast is a record
of K = 2. Then it trains two reward models with `train_rm.py --data` and the default settings, one on
the rankings alone and one on rankings + contrasts (both evaluated as usual, on the same fresh
validation rankings), and runs what_the_rm_sees on each.

    python -m nanorm.experiments.contrast_pairs        # after train_sft.py and train_rm.py, ~3.5 minutes
    # -> out/rm_contrast/{rankings,with_contrasts}/: each a train_rm.py output folder with its ckpt.pt

Lesson 04 reads the result: the check is learnable in one epoch, and learning it is not the same as
agreeing with the labelers more often.
"""

import os
import random
import sys
from collections import Counter
from dataclasses import dataclass

from nanorm import stages, world
from nanorm.experiments import what_the_rm_sees
from nanorm.config import parse_config
from nanorm.experiments.common import minimal_edit
from nanorm.prefdata import Comparison, load_comparisons, write_comparisons

@dataclass
class ContrastConfig:
    comparisons: str = "out/rm/comparisons.jsonl"   # rankings collected by train_rm.py (world prompts)
    sft_ckpt: str = "out/sft/ckpt.pt"
    out_dir: str = "out/rm_contrast"
    per_ranking: int = 3          # contrast pairs made from each ranking's correct answers, at most
    labeler_seed: int = 1337      # train_rm.py's --seed: the labelers that ranked the file
    n_labelers: int = 8
    seed: int = 0
    train: bool = True            # then train an RM on rankings + contrasts and analyse it
    threads: int = 0
    device: str = "cpu"


def contrast_records(rankings, labelers, per_ranking, rng):
    """For each ranking, up to per_ranking records [correct answer, the same with one fact changed],
    ranked by that ranking's labeler (a Plackett-Luce draw of two = one Bradley-Terry choice)."""
    by_id = {lab.id: lab for lab in labelers}
    out = []
    for rec in rankings:
        prompt = world.Prompt.from_dict(rec.meta["world_prompt"])
        finished = rec.meta.get("finished", [True] * len(rec.responses))
        made = 0
        for text, done in zip(rec.responses, finished):
            if made == per_ranking:
                break
            if not done or not world.features(prompt, text)["correct"]:
                continue
            edited = minimal_edit(prompt, text, rng)
            if edited is None:
                continue
            pair = [text, edited]
            out.append(Comparison(prompt=rec.prompt, responses=pair, ranking=by_id[rec.labeler].rank(prompt, pair, rng),
                                  labeler=rec.labeler, meta={"world_prompt": rec.meta["world_prompt"],
                                                             "finished": [True, True], "contrast": True}))
            made += 1
    return out


def main(argv):
    cfg = parse_config(ContrastConfig, argv)
    rankings, _ = load_comparisons(cfg.comparisons)
    if not all("world_prompt" in r.meta for r in rankings):
        raise SystemExit(f"error: {cfg.comparisons}: not a file of world rankings (no meta.world_prompt); "
                         f"run train_rm.py first")
    labelers = world.make_labelers(cfg.n_labelers, seed=cfg.labeler_seed)
    contrasts = contrast_records(rankings, labelers, cfg.per_ranking, random.Random(cfg.seed))
    per_family = dict(Counter(c.meta["world_prompt"]["family"] for c in contrasts))
    right = sum(c.ranking[0] == 0 for c in contrasts) / max(1, len(contrasts))
    print(f"{len(rankings)} rankings + {len(contrasts)} contrast pairs {per_family}")
    print(f"the labelers preferred the unedited answer in {right:.3f} of the contrast pairs")
    results = {}
    for name, records in (("rankings", rankings), ("with_contrasts", rankings + contrasts)):
        out_dir = os.path.join(cfg.out_dir, name)
        path = os.path.join(out_dir, "train_comparisons.jsonl")
        write_comparisons(path, records)
        print(f"\n=== {name}: {len(records)} records -> {path}")
        if not cfg.train:
            continue
        # train_rm.py --data=path (its default settings; fresh held-out rankings), then what_the_rm_sees on it
        rm_report = stages.run("rm", data=path, sft_ckpt=cfg.sft_ckpt, out_dir=out_dir, device=cfg.device,
                               threads=cfg.threads)
        seen = what_the_rm_sees.main([f"--sft_ckpt={cfg.sft_ckpt}", f"--rm_ckpt={out_dir}/ckpt.pt",
                                      f"--device={cfg.device}", f"--threads={cfg.threads}",
                                      f"--out={out_dir}/what_the_rm_sees.json"])
        results[name] = {"rm": rm_report, "what_the_rm_sees": seen}
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
