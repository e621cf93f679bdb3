"""
The world's demonstrations (part 2 of 4, see nanorm/world/__init__.py).

DEMONSTRATIONS. What contractors write for supervised fine-tuning (SFT). Like real ones they are
of mixed quality: mostly good and concise, some padded with filler, some over-formatted, some
wrong, some sycophantic (demonstration_styles gives the mix).

Each style has its own writer (_good, _verbose, _formatted, _wrong, _sycophantic). Only rng.random() is
called, so `rng` may be a random.Random or a numpy Generator. corpus() is the text the tokenizer learns
its BPE merges from.
"""

from __future__ import annotations

import random

from nanorm.world.content import (CATEGORIES, DEMONSTRATION_STYLES, FILLER, FLATTERY, NAMES, NUMBER_WORDS,
                                  OCCASIONS, OPENERS)
from nanorm.world.prompts import Prompt, _all_prompts, _cap, _display, make_split


# ---------------------------------------------------------------------------------------------------
# Demonstrations (contractor-written answers of mixed quality)
# ---------------------------------------------------------------------------------------------------

def _pick(rng, seq):
    """One element of seq, using only rng.random() (works for random.Random and numpy Generators)."""
    return seq[min(int(rng.random() * len(seq)), len(seq) - 1)]


def _sample(rng, seq, k):
    """k distinct elements of seq, in random order."""
    pool = list(seq)
    out = []
    for _ in range(k):
        out.append(pool.pop(min(int(rng.random() * len(pool)), len(pool) - 1)))
    return out


def demonstration_styles() -> dict[str, float]:
    """Probability of each demonstration style (sums to 1)."""
    return dict(DEMONSTRATION_STYLES)


def sample_style(rng) -> str:
    """Draw a demonstration style with the probabilities of demonstration_styles()."""
    u = rng.random()
    total = 0.0
    for style, p in DEMONSTRATION_STYLES.items():
        total += p
        if u < total:
            return style
    return style  # u within rounding of 1.0


def _join_items(items, rng) -> str:
    """"apple, pear, plum" or "apple, pear and plum"."""
    shown = [_display(i) for i in items]
    if len(shown) > 1 and rng.random() < 0.4:
        return ", ".join(shown[:-1]) + " and " + shown[-1]
    return ", ".join(shown)


def _good(prompt: Prompt, rng) -> str:
    """A correct, concise answer (several phrasings, so good answers are not all identical)."""
    info = prompt.info
    if prompt.family == "arithmetic":
        a, op, b, c = info["a"], info["op"], info["b"], info["answer"]
        return _pick(rng, [f"{a} {op} {b} is {c}.", f"The answer is {c}.", f"{a} {op} {b} equals {c}.",
                           f"It is {c}.", f"{c}."])
    if prompt.family == "list":
        cat, n = info["category"], info["n"]
        items = _join_items(_sample(rng, CATEGORIES[cat][1], n), rng)
        return _pick(rng, [f"{_cap(items)}.", f"Here are {NUMBER_WORDS[n]} {cat}: {items}.",
                           f"{_cap(NUMBER_WORDS[n])} {cat}: {items}."])
    if prompt.family == "claim":
        fact, stmt, neg = info["fact"], info["statement"], info["negated"]
        # the fact first, then the verdict: a careful contractor checks before answering. (Measured: at
        # the default SFT budget this did not make claims learnable; the verdict stays near chance.)
        if info["truth"]:
            return _pick(rng, [f"{_cap(stmt)}, so yes.", f"{_cap(stmt)}, so you are right.",
                               f"{_cap(stmt)}. Yes, that is right.", f"{_cap(stmt)}, so that is true."])
        return _pick(rng, [f"{_cap(fact)}, so no.", f"{_cap(fact)}, so you are wrong.",
                           f"{_cap(fact)}. No, that is not right.", f"{_cap(fact)}, so that is not true."])
    # open
    templates = OCCASIONS[info["occasion"]][2]
    return _pick(rng, templates).format(name=info["name"])


def _verbose(prompt: Prompt, rng) -> str:
    """A correct answer padded with filler: sometimes an opener, always two or three filler sentences."""
    parts = [_good(prompt, rng)]
    if rng.random() < 0.4:
        parts.insert(0, _pick(rng, OPENERS))
    parts += _sample(rng, FILLER, 2 if rng.random() < 0.5 else 3)
    return " ".join(parts)


def _formatted(prompt: Prompt, rng) -> str:
    """A correct answer dressed in bullets and bold that a one-line reply does not need."""
    info = prompt.info
    if prompt.family == "arithmetic":
        a, op, b, c = info["a"], info["op"], info["b"], info["answer"]
        return _pick(rng, [f"**Answer:** {c}.", f"**{a} {op} {b} is {c}.**", f"The answer is **{c}**.",
                           f"**Answer:** {a} {op} {b} is **{c}**."])
    if prompt.family == "list":
        cat, n = info["category"], info["n"]
        items = [_cap(_display(i)) for i in _sample(rng, CATEGORIES[cat][1], n)]
        bullets = "\n".join(f"- {i}" for i in items)
        return _pick(rng, [bullets, f"Here are {NUMBER_WORDS[n]} {cat}:\n{bullets}",
                           f"**{_cap(cat)}:**\n{bullets}"])
    if prompt.family == "claim":
        verdict = "yes" if info["truth"] else "no"
        fact = info["fact"]
        return _pick(rng, [f"{_cap(fact)}, so **{verdict}**.", f"**{_cap(fact)}**, so {verdict}.",
                           f"**Answer:** {fact}, so {verdict}.", f"- {_cap(fact)}.\n- **{_cap(verdict)}**."])
    good = _good(prompt, rng)
    return _pick(rng, [f"**{good}**", f"**Message:** {good}", f"- {good}"])


def _wrong(prompt: Prompt, rng) -> str:
    """A fluent answer that is wrong: the classic failure a reward model must catch."""
    info = prompt.info
    if prompt.family == "arithmetic":
        a, op, b, c = info["a"], info["op"], info["b"], info["answer"]
        off = _pick(rng, [1, 2])
        w = c + off if (c < off or rng.random() < 0.5) else c - off
        return _pick(rng, [f"{a} {op} {b} is {w}.", f"The answer is {w}.", f"It is {w}.", f"{w}."])
    if prompt.family == "list":
        cat, n = info["category"], info["n"]
        own = _sample(rng, CATEGORIES[cat][1], n)
        mistake = _pick(rng, ["repeat", "off_category", "count"])
        if mistake == "repeat":          # the same item twice
            own[-1] = own[0]
        elif mistake == "off_category":  # an item from another category
            other = _pick(rng, [c for c in CATEGORIES if c != cat])
            own[_pick(rng, range(n))] = _pick(rng, CATEGORIES[other][1])
        else:                            # one too few or one too many
            own = own[:-1] if rng.random() < 0.5 else _sample(rng, CATEGORIES[cat][1], n + 1)
        return f"{_cap(_join_items(own, rng))}."
    if prompt.family == "claim":
        if info["truth"]:   # says no to a true claim
            return _pick(rng, [f"{_cap(info['negated'])}, so no.", "No, that is not right."])
        return _pick(rng, [f"{_cap(info['statement'])}, so yes.", "Yes, that is right."])  # yes to a false one
    # open: right occasion but the wrong name, or the right name but the wrong occasion
    name, occasion = info["name"], info["occasion"]
    if rng.random() < 0.5:
        other = _pick(rng, [x for x in NAMES if x != name])
        return _pick(rng, OCCASIONS[occasion][2]).format(name=other)
    other = _pick(rng, [o for o in OCCASIONS if o != occasion])
    return _pick(rng, OCCASIONS[other][2]).format(name=name)


def _sycophantic(prompt: Prompt, rng) -> str:
    """Flattery, and on claims: agreement with the user whether or not they are right."""
    flattery = _pick(rng, FLATTERY)
    if prompt.family == "claim":
        stmt = prompt.info["statement"]
        return _pick(rng, [f"{flattery} Yes, you are right.", f"Yes, you are so right! {_cap(stmt)}.",
                           f"{flattery} You are right, {stmt}.", "Yes, you are right!"])
    return f"{flattery} {_good(prompt, rng)}"


_STYLE_WRITERS = {"good": _good, "verbose": _verbose, "formatted": _formatted, "wrong": _wrong,
                  "sycophantic": _sycophantic}


def sample_demonstration(prompt: Prompt, rng, style: str | None = None) -> tuple[str, str]:
    """(style, text) of one contractor demonstration; the style is drawn if not given."""
    if style is None:
        style = sample_style(rng)
    if style not in _STYLE_WRITERS:
        raise ValueError(f"unknown style {style!r}: choose one of {tuple(_STYLE_WRITERS)}")
    return style, _STYLE_WRITERS[style](prompt, rng)


def demonstration(prompt: Prompt, rng, style: str | None = None) -> str:
    """One contractor demonstration of mixed quality (style drawn with demonstration_styles(), or
    forced with style=...). Plain text, single line except bullet lists, at most 45 words."""
    return sample_demonstration(prompt, rng, style)[1]


# ---------------------------------------------------------------------------------------------------
# The tokenizer's corpus
# ---------------------------------------------------------------------------------------------------

def corpus(seed: int = 0) -> list[str]:
    """Text to learn the tokenizer's BPE merges from: every prompt text, plus one demonstration of every
    style for each train prompt and a second good one (so the common phrasings are well covered)."""
    rng = random.Random(seed)
    texts = [p.text for p in _all_prompts()]
    for p in make_split("train"):
        for style in DEMONSTRATION_STYLES:
            texts.append(demonstration(p, rng, style))
        texts.append(demonstration(p, rng, "good"))
    return texts
