"""
The world's labelers (part 4 of 4, see nanorm/world/__init__.py), and measurements of them.

LABELERS. Simulated humans who rank responses. Each one sees
     utility = gold + w_length * words + w_format * (formatting marks)
                    + w_agree * (tells the user they are right)
and chooses noisily (Bradley-Terry / Plackett-Luce with a temperature). So labelers are mostly
right, sometimes disagree with each other (about 73% agreement, as in InstructGPT), and share
three biases: they like LONGER answers, more FORMATTING and AGREEING with the user. Gold
penalises all three. A reward model trained on these labelers learns the biases too, and PPO
against that reward model will find them: proxy reward goes up while gold goes down.

measure_agreement and bias_win_rates measure those numbers (for the report and the tests).
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass

import numpy as np

from nanorm.world.content import (FILLER, ITEM_TO_CATEGORY, LABELER_SPREAD, LABELER_TEMPERATURE, LABELER_W_AGREE,
                                  LABELER_W_FORMAT, LABELER_W_LENGTH, NAMES)
from nanorm.world.demonstrations import _sample, demonstration
from nanorm.world.judging import _analyse, features, gold, gold_compare
from nanorm.world.prompts import Prompt, make_split


# ---------------------------------------------------------------------------------------------------
# Labelers: noisy, biased humans
# ---------------------------------------------------------------------------------------------------

def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


@dataclass(frozen=True)
class Labeler:
    """A simulated human labeler.

    utility = gold
              + w_length * words                    (linear, uncapped: a little credit for every word)
              + w_format * format marks             (linear, uncapped)
              + w_agree  * [says the user is right] (claim family)
    Gold charges more per word and per mark than a labeler credits, but its charges stop growing
    (content.py): near ordinary answers the labelers side with gold, far out the biases win.
    Gibberish gets no bias bonus: nobody rewards long junk. Choices are noisy (Bradley-Terry):
        P(a preferred to b) = sigmoid((u_a - u_b) / temperature).
    """
    id: int
    temperature: float
    w_length: float
    w_format: float
    w_agree: float

    def utility(self, prompt: Prompt, response: str, finished: bool = True) -> float:
        """Gold plus this labeler's biases (no noise)."""
        u = gold(prompt, response, finished)
        f = _analyse(prompt, response)
        if f["gibberish"]:
            return u
        u += self.w_length * f["n_words"]
        u += self.w_format * f["n_format"]
        u += self.w_agree * bool(f["agrees"])
        return u

    def p_prefer(self, prompt: Prompt, a: str, b: str, finished_a: bool = True,
                 finished_b: bool = True) -> float:
        """P(this labeler prefers a to b) = sigmoid((u_a - u_b) / temperature)."""
        diff = self.utility(prompt, a, finished_a) - self.utility(prompt, b, finished_b)
        return _sigmoid(diff / self.temperature)

    def compare(self, prompt: Prompt, a: str, b: str, rng, finished_a: bool = True,
                finished_b: bool = True) -> bool:
        """One sampled choice: True if a is preferred."""
        return rng.random() < self.p_prefer(prompt, a, b, finished_a, finished_b)

    def rank(self, prompt: Prompt, responses: list[str], rng, finished: list[bool] | None = None) -> list[int]:
        """Rank responses, best first: indices into `responses`.

        A Plackett-Luce draw with weights w_i = exp(u_i / temperature): pick the best with probability
        w_i / sum(w), remove it, pick the next from the rest, and so on. Under Plackett-Luce the chance
        that i ends up above j is exactly w_i / (w_i + w_j) = sigmoid((u_i - u_j) / temperature), which
        is p_prefer(i, j). So the C(K,2) pairs cut from one ranking have the same pairwise marginals as
        single comparisons, and the reward model's best possible (Bayes) accuracy is known exactly.
        """
        if finished is None:
            finished = [True] * len(responses)
        logits = [self.utility(prompt, r, d) / self.temperature for r, d in zip(responses, finished)]
        remaining = list(range(len(responses)))
        order = []
        while remaining:
            top = max(logits[i] for i in remaining)          # subtract the max: exp() cannot overflow
            weights = [math.exp(logits[i] - top) for i in remaining]
            u = rng.random() * sum(weights)
            k = 0
            while k < len(weights) - 1 and u >= weights[k]:
                u -= weights[k]
                k += 1
            order.append(remaining.pop(k))
        return order


def make_labelers(n: int = 8, seed: int = 0) -> list[Labeler]:
    """n labelers, each with its own noise and biases drawn log-normally around the population values
    (so every labeler likes longer, formatted, agreeable answers -- some much more than others)."""
    rng = np.random.default_rng(seed)
    labelers = []
    for i in range(n):
        t, wl, wf, wa = np.exp(rng.normal(0.0, LABELER_SPREAD, size=4))
        labelers.append(Labeler(id=i, temperature=float(LABELER_TEMPERATURE * t),
                                w_length=float(LABELER_W_LENGTH * wl), w_format=float(LABELER_W_FORMAT * wf),
                                w_agree=float(LABELER_W_AGREE * wa)))
    return labelers


def agreement(labeler_a: Labeler, labeler_b: Labeler, prompt: Prompt, a: str, b: str,
              finished_a: bool = True, finished_b: bool = True) -> float:
    """Probability that two labelers, judging independently, pick the same response of the pair:
    p_a p_b + (1 - p_a)(1 - p_b)."""
    pa = labeler_a.p_prefer(prompt, a, b, finished_a, finished_b)
    pb = labeler_b.p_prefer(prompt, a, b, finished_a, finished_b)
    return pa * pb + (1 - pa) * (1 - pb)


# ---------------------------------------------------------------------------------------------------
# Measurements (used by the report, __main__.py, and by the tests)
# ---------------------------------------------------------------------------------------------------

def measure_agreement(labelers: list[Labeler], n_prompts: int = 400, pairs_per_prompt: int = 2,
                      seed: int = 0, split: str = "train") -> tuple[float, float]:
    """Mean inter-labeler agreement on pairs of independent demonstrations for the same prompt
    (over prompts balanced across families, pairs, and all ordered labeler pairs i != j).
    Returns (mean agreement, fraction of pairs where the two demonstrations are identical)."""
    rng = random.Random(seed)
    total, count, identical, n_pairs = 0.0, 0, 0, 0
    for prompt in make_split(split, n_prompts, seed):
        for _ in range(pairs_per_prompt):
            a, b = demonstration(prompt, rng), demonstration(prompt, rng)
            n_pairs += 1
            identical += a == b
            ps = [lab.p_prefer(prompt, a, b) for lab in labelers]
            for i, pi in enumerate(ps):
                for j, pj in enumerate(ps):
                    if i != j:
                        total += pi * pj + (1 - pi) * (1 - pj)
                        count += 1
    return total / count, identical / n_pairs


def bias_win_rates(labelers: list[Labeler], n_prompts: int = 200, seed: int = 0,
                   split: str = "train") -> dict:
    """How often labelers (mean p_prefer) and gold (gold_compare) prefer the BIASED response of a pair:
      length:     good + two filler sentences  vs  the same good answer
      format:     a formatted demonstration     vs  a good one
      sycophancy: agreeing with a FALSE claim   vs  a correct disagreement (false claims only)
    Also the fraction of labelers whose p_prefer for the biased response is above 0.5."""
    rng = random.Random(seed)
    prompts = make_split(split, n_prompts, seed)
    false_claims = [p for p in make_split(split, None) if p.family == "claim" and not p.info["truth"]]
    false_claims = [false_claims[int(rng.random() * len(false_claims))] for _ in range(n_prompts)]
    pairs = {"length": [], "format": [], "sycophancy": []}
    for p in prompts:
        good = demonstration(p, rng, "good")
        pairs["length"].append((p, good + " " + " ".join(_sample(rng, FILLER, 2)), good))
        pairs["format"].append((p, demonstration(p, rng, "formatted"), demonstration(p, rng, "good")))
    for p in false_claims:
        pairs["sycophancy"].append((p, demonstration(p, rng, "sycophantic"), demonstration(p, rng, "good")))
    out = {}
    for name, triples in pairs.items():
        per_labeler = [np.mean([lab.p_prefer(p, biased, plain) for p, biased, plain in triples])
                       for lab in labelers]
        out[name] = {"labelers": float(np.mean(per_labeler)),
                     "labelers_above_half": float(np.mean([x > 0.5 for x in per_labeler])),
                     "gold": float(np.mean([gold_compare(p, biased, plain) for p, biased, plain in triples]))}
    return out


# ---------------------------------------------------------------------------------------------------
# Contrast pairs: a correct answer against the same answer with one fact changed
# ---------------------------------------------------------------------------------------------------

def minimal_edit(prompt, text, rng):
    """`text` (a correct answer) with one fact changed so that it is wrong, or None if no such edit is found.
    A contrast pair [text, minimal_edit(text)] differs in the fact and nothing else: no length or style cue
    can stand in for checking it (what_the_rm_sees's minimal pairs; train_rm.py's --contrasts).

    arithmetic: the last number becomes another number 0..8; open: the person's name becomes another
    name; list: one item becomes an item of another category; claim: the last verdict word flips
    (yes/no, right/wrong, true/false, correct/incorrect). The result is checked with features."""
    spots = [m for m in re.finditer(r"[A-Za-z]+|\d+", text) if _swaps(prompt, m.group())]
    if prompt.family in ("arithmetic", "claim"):
        spots = spots[-1:]   # the answer's number / the verdict: the last one in the text
    for m in rng.sample(spots, len(spots)):
        edited = text[:m.start()] + rng.choice(_swaps(prompt, m.group())) + text[m.end():]
        if not features(prompt, edited)["correct"]:
            return edited
    return None


_VERDICT_FLIP = {"yes": "no", "no": "yes", "right": "wrong", "wrong": "right", "true": "false", "false": "true",
                 "correct": "incorrect", "incorrect": "correct"}


def _swaps(prompt, word):
    """The words `word` may be replaced with in a minimal edit of an answer to `prompt` (case kept)."""
    case = (lambda w: w.capitalize()) if word[:1].isupper() else (lambda w: w)
    if prompt.family == "arithmetic" and word.isdigit():
        return [str(n) for n in range(9) if str(n) != word]
    if prompt.family == "open" and word in NAMES:
        return [n for n in NAMES if n != word]
    if prompt.family == "list" and word.lower() in ITEM_TO_CATEGORY:
        return [case(i) for i, c in ITEM_TO_CATEGORY.items() if c != ITEM_TO_CATEGORY[word.lower()]]
    if prompt.family == "claim" and word.lower() in _VERDICT_FLIP:
        return [case(_VERDICT_FLIP[word.lower()])]
    return []
