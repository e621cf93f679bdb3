"""
The world's report, `python -m nanorm.world`: split sizes, example demonstrations with their gold
scores, edge cases, the labelers, their measured agreement, how often they side with gold, what
padding does to labeler utility and to gold, and the labelers' bias win-rates.

    python -m nanorm.world                  # the labelers make_labelers(8, seed=0): the calibration's draw
    python -m nanorm.world --seed=1337      # the labelers train_rm.py draws at its default --seed

The world's constants (content.py) were calibrated on the seed-0 draw. Each run of train_rm.py draws its
own eight labelers with its --seed, and the figures move with the draw: at seed 1337 agreement on
demonstration pairs is 0.655 instead of 0.688, and the bias win rates are 0.226 / 0.279 / 0.167 instead
of 0.176 / 0.199 / 0.145.
"""

import random
import sys
from dataclasses import dataclass

import numpy as np

from nanorm.world import (DEMONSTRATION_STYLES, FAMILIES, FILLER, SPLITS, all_prompts, bias_win_rates,
                          demonstration, features, gold, gold_compare, make_labelers, make_split,
                          measure_agreement, vocabulary, words)
from nanorm.config import parse_config
from nanorm.world.prompts import _all_prompts


# ---------------------------------------------------------------------------------------------------
# Report: python -m nanorm.world
# ---------------------------------------------------------------------------------------------------

ARITH_EXAMPLE = "What is 4 plus 2?"   # operands are 0..MAX_NUMBER


def _report(seed: int = 0) -> None:
    prompts = all_prompts()
    print(f"prompts: {len(prompts)}   vocabulary: {len(vocabulary())} distinct words (plus numbers)")
    print(f"{'split':<6}" + "".join(f"{f:>12}" for f in FAMILIES) + f"{'total':>8}")
    for split in SPLITS:
        pool = make_split(split)
        print(f"{split:<6}" + "".join(f"{sum(p.family == f for p in pool):>12}" for f in FAMILIES)
              + f"{len(pool):>8}")

    rng = random.Random(0)
    print("\nexample demonstrations (gold score in brackets)")
    for family in FAMILIES:
        prompt = next(p for p in make_split("val", 40, seed=1) if p.family == family)
        print(f"\n[{family}] {prompt.text}    info={prompt.info}")
        for style in DEMONSTRATION_STYLES:
            text = demonstration(prompt, rng, style)
            print(f"  {style:<12} [{gold(prompt, text):+.2f}]  {text!r}")
    p = next(x for x in make_split("val") if x.family == "arithmetic")
    print(f"\nedge cases for {p.text!r}:")
    for text, fin in [("", True), ("xq zz 1 1 1 1", True), ("the the the the", True),
                      (demonstration(p, rng, "good"), False)]:
        print(f"  [{gold(p, text, fin):+.2f}]  {text!r}  finished={fin}")

    labelers = make_labelers(8, seed=seed)
    print(f"\nlabelers (make_labelers(8, seed={seed}); train_rm.py draws its own with its --seed, 1337 by default):")
    for lab in labelers:
        print(f"  id={lab.id}  T={lab.temperature:.3f}  w_length={lab.w_length:.3f}  "
              f"w_format={lab.w_format:.3f}  w_agree={lab.w_agree:.2f}")
    agree, identical = measure_agreement(labelers, n_prompts=1200, pairs_per_prompt=5)
    print(f"\ninter-labeler agreement on demonstration pairs: {agree:.3f}  "
          f"(identical pairs: {identical:.1%}; InstructGPT reports ~0.73)")
    population, _ = measure_agreement(make_labelers(64, seed=1), n_prompts=1200, pairs_per_prompt=1)
    print(f"  same, for a larger population make_labelers(64, seed=1): {population:.3f}")

    # How often does the average labeler side with gold on demonstration pairs where gold is not tied?
    # Split by whether exactly one of the two is correct (gold should dominate) or both are correct /
    # both wrong (then style decides, and the biases often beat gold: by design).
    rng = random.Random(1)
    sides = {"one correct, one not": [], "same correctness": []}
    for p in make_split("train", 1200, seed=1):
        a, b = demonstration(p, rng), demonstration(p, rng)
        g = gold_compare(p, a, b)
        if g != 0.5:
            mean_p = float(np.mean([lab.p_prefer(p, a, b) for lab in labelers]))
            differ = features(p, a)["correct"] != features(p, b)["correct"]
            sides["one correct, one not" if differ else "same correctness"].append(
                mean_p if g == 1.0 else 1.0 - mean_p)
    for name, values in sides.items():
        print(f"  labelers side with gold on {np.mean(values):.1%} of non-tied pairs with {name} "
              f"({len(values)} pairs)")
    # What PPO will find: pad one good answer with more and more filler sentences.
    print(f"\npadding a good answer to {ARITH_EXAMPLE!r} (mean labeler utility vs gold):")
    prompt = next(x for x in _all_prompts() if x.text == ARITH_EXAMPLE)
    text = demonstration(prompt, random.Random(0), "good")
    for k in range(len(FILLER) + 1):
        padded = " ".join([text] + FILLER[:k])
        mean_u = np.mean([lab.utility(prompt, padded) for lab in labelers])
        print(f"  {len(words(padded)):>3} words   labelers {mean_u:+.2f}   gold {gold(prompt, padded):+.2f}")

    print("\nP(biased response preferred)   labelers  (labelers > 0.5)   gold")
    for name, r in bias_win_rates(labelers, n_prompts=500).items():
        print(f"  {name:<28} {r['labelers']:8.3f}  {r['labelers_above_half']:12.0%}   {r['gold']:8.3f}")


@dataclass
class WorldReportConfig:
    seed: int = 0      # the labelers' draw, make_labelers(8, seed=SEED); train_rm.py's default --seed is 1337


if __name__ == "__main__":
    _report(parse_config(WorldReportConfig, sys.argv[1:]).seed)
