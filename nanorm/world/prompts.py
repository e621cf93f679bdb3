"""
The world's prompts (part 1 of 4, see nanorm/world/__init__.py).

PROMPTS. Short templated requests in plain English, in four families. Each family exercises one
failure mode from the lesson:
    arithmetic  "What is 4 plus 2?"                          -> correctness
    list        "Name three fruits."                         -> completeness, no repeats, on-topic
    claim       "I think 3 is more than 4. Am I right?"      -> truthfulness vs sycophancy
    open        "Wish Sam a happy birthday."                 -> relevance, tone, concision
The prompt space is small and enumerable (all_prompts), split 60/15/25 by a hash of the text.

Prompt is one request, with the `info` gold needs to judge an answer; split_of and make_split give the
splits and family-balanced samples of them. The small text helpers (_cap, _article, _display...) live
here too: the demonstrations and the judging write and read the same phrasings.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from functools import lru_cache

from nanorm.world.content import (ARITH_FRAMES, CATEGORIES, CLAIM_FRAMES, FAMILIES, ITEM_TO_CATEGORY,
                                  LIST_FRAMES, MAX_CLAIM_SUM, MAX_NUMBER, NAMES, NUMBER_WORDS, OCCASIONS,
                                  SPLITS)


# ---------------------------------------------------------------------------------------------------
# Prompts
# ---------------------------------------------------------------------------------------------------

def _hash_hex(text: str, salt: str = "") -> str:
    """A stable hex digest of text (Python's hash() changes between runs, sha256 does not)."""
    return hashlib.sha256((salt + text).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Prompt:
    """One user request. `info` holds what gold needs to judge a response (the answer, the category,
    whether a claim is true...). info is left out of equality and hashing: id and text identify a prompt."""
    id: str
    family: str
    text: str
    info: dict = field(compare=False)

    def to_dict(self) -> dict:
        return {"id": self.id, "family": self.family, "text": self.text, "info": dict(self.info)}

    @staticmethod
    def from_dict(d: dict) -> "Prompt":
        return Prompt(id=d["id"], family=d["family"], text=d["text"], info=dict(d["info"]))


def _make_prompt(family: str, text: str, info: dict) -> Prompt:
    return Prompt(id=f"{family}-{_hash_hex(text)[:8]}", family=family, text=text, info=info)


def _cap(s: str) -> str:
    """Capitalise the first letter only ("a carrot is..." -> "A carrot is...")."""
    return s[:1].upper() + s[1:]


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _item_phrase(item: str) -> str:
    """How an item is named in a sentence: "a carrot", "an owl", "Japan"."""
    if ITEM_TO_CATEGORY[item] == "countries":
        return item.capitalize()
    return f"{_article(item)} {item}"


def _display(item: str) -> str:
    """How an item is written in a list: countries capitalised, the rest lower case."""
    return item.capitalize() if ITEM_TO_CATEGORY[item] == "countries" else item


def _arith_value(a: int, op: str, b: int) -> int:
    return a + b if op == "plus" else a - b


def _claim_statements(kind: str, x, y, rel):
    """For one claim, return (statement as asserted, truth, the true fact, the negated statement).

    kind "compare":  x, y numbers, rel "more"/"less"      "1 is more than 4"
    kind "sum":      x, y numbers, rel = the claimed sum   "4 plus 3 is 9"
    kind "category": x an item, y a category              "a carrot is a fruit"
    """
    if kind == "compare":
        truth = (x > y) if rel == "more" else (x < y)
        other = "less" if rel == "more" else "more"
        fact = f"{x} is {rel} than {y}" if truth else f"{x} is {other} than {y}"
        return f"{x} is {rel} than {y}", truth, fact, f"{x} is not {rel} than {y}"
    if kind == "sum":
        truth = (x + y == rel)
        return f"{x} plus {y} is {rel}", truth, f"{x} plus {y} is {x + y}", f"{x} plus {y} is not {rel}"
    item, cat = x, y
    singular = CATEGORIES[cat][0]
    true_singular = CATEGORIES[ITEM_TO_CATEGORY[item]][0]
    truth = ITEM_TO_CATEGORY[item] == cat
    return (f"{_item_phrase(item)} is {_article(singular)} {singular}", truth,
            f"{_item_phrase(item)} is {_article(true_singular)} {true_singular}",
            f"{_item_phrase(item)} is not {_article(singular)} {singular}")


@lru_cache(maxsize=1)
def _all_prompts() -> tuple:
    prompts = []
    # arithmetic: a plus b (any a, b) and a minus b (a >= b, so answers are never negative)
    for op in ("plus", "minus"):
        for a in range(MAX_NUMBER + 1):
            for b in range(MAX_NUMBER + 1):
                if op == "minus" and a < b:
                    continue
                for frame in ARITH_FRAMES:
                    info = {"a": a, "op": op, "b": b, "answer": _arith_value(a, op, b)}
                    prompts.append(_make_prompt("arithmetic", frame.format(a=a, op=op, b=b), info))
    # list: n items of a category
    for cat in CATEGORIES:
        for n, nw in NUMBER_WORDS.items():
            for frame in LIST_FRAMES:
                text = _cap(frame.format(nw=nw, cat=cat))
                prompts.append(_make_prompt("list", text, {"category": cat, "n": n}))
    # claim: the user asserts something checkable; exactly half of each kind is true
    claims = []
    for x in range(MAX_NUMBER + 1):
        for y in range(MAX_NUMBER + 1):
            if x != y:
                claims += [("compare", x, y, "more"), ("compare", x, y, "less")]
    for x in range(MAX_CLAIM_SUM + 1):
        for y in range(MAX_CLAIM_SUM + 1):
            # one true claim and one false one, off by 1 or 2 (chosen by a stable hash)
            off = 1 + int(_hash_hex(f"{x}+{y}", "off")[:2], 16) % 2
            wrong = x + y + off if (x + y < off or int(_hash_hex(f"{x}+{y}", "sign")[:2], 16) % 2) \
                else x + y - off
            claims += [("sum", x, y, x + y), ("sum", x, y, wrong)]
    for item, cat in ITEM_TO_CATEGORY.items():
        others = [c for c in CATEGORIES if c != cat]
        other = others[int(_hash_hex(item, "other")[:4], 16) % len(others)]
        claims += [("category", item, cat, None), ("category", item, other, None)]
    for kind, x, y, rel in claims:
        statement, truth, fact, negated = _claim_statements(kind, x, y, rel)
        info = {"kind": kind, "statement": statement, "truth": truth, "fact": fact, "negated": negated}
        for frame in CLAIM_FRAMES:
            prompts.append(_make_prompt("claim", frame.format(s=statement), info))
    # open: a short message to a named person for an occasion
    for name in NAMES:
        for occasion, (frames, keywords, _) in OCCASIONS.items():
            for frame in frames:
                info = {"name": name, "occasion": occasion, "keywords": list(keywords)}
                prompts.append(_make_prompt("open", frame.format(name=name), info))
    assert len({p.id for p in prompts}) == len(prompts), "prompt ids must be unique"
    return tuple(prompts)


def all_prompts() -> list[Prompt]:
    """The whole enumerable prompt space, in a fixed order."""
    return list(_all_prompts())


def split_of(prompt: Prompt) -> str:
    """Which split a prompt belongs to: a stable hash of its text, about 60/15/25 (the held-out
    splits are large so that RM accuracy and win rates are measured on hundreds of unseen prompts)."""
    bucket = int(_hash_hex(prompt.text, "split:")[:8], 16) % 100
    return "train" if bucket < 60 else ("val" if bucket < 75 else "test")


def make_split(split: str, n: int | None = None, seed: int = 0) -> list[Prompt]:
    """The prompts of one split. n=None: all of them, in all_prompts order. Otherwise a sample of n,
    deterministic given seed, balanced across families as far as the family sizes allow (a family
    too small for its share gives all it has, the others fill in), in shuffled order."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: choose one of {SPLITS}")
    pool = [p for p in _all_prompts() if split_of(p) == split]
    if n is None:
        return pool
    if n > len(pool):
        raise ValueError(f"split {split!r} has only {len(pool)} prompts, asked for {n}")
    by_family = {f: [p for p in pool if p.family == f] for f in FAMILIES}
    # fair shares: repeatedly give each family that still has prompts an equal part of what is left
    quota = {f: 0 for f in FAMILIES}
    left = n
    while left > 0:
        open_families = [f for f in FAMILIES if quota[f] < len(by_family[f])]
        share = max(1, left // len(open_families))
        for f in open_families:
            take = min(share, len(by_family[f]) - quota[f], left)
            quota[f] += take
            left -= take
    rng = random.Random(seed)
    chosen = []
    for f in FAMILIES:
        chosen += rng.sample(by_family[f], quota[f])
    rng.shuffle(chosen)
    return chosen
