"""
Pieces the experiments share, so that no experiment imports another:

    load_sft_and_rm   the SFT policy and the normalised reward model of a config's checkpoints
    minimal_edit      a correct answer with one fact changed, so that it is wrong (what_the_rm_sees's
                      minimal pairs, contrast_pairs's training pairs)
"""

import re

import torch

from nanorm import world
from nanorm.evaluate import load_policy, load_reward_model
from nanorm.tokenizer import load_tokenizer


def load_sft_and_rm(cfg):
    """What an analysis needs from a config with sft_ckpt, rm_ckpt, tokenizer, threads and device:
    (device, tokenizer, SFT policy, normalised reward model)."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = torch.device(cfg.device)
    tok = load_tokenizer(cfg.tokenizer)
    sft, _ = load_policy(cfg.sft_ckpt, tok, device, kinds="sft")
    rm, _ = load_reward_model(cfg.rm_ckpt, tok, device)
    return device, tok, sft, rm


def minimal_edit(prompt, text, rng):
    """`text` (a correct answer) with one fact changed so that it is wrong, or None if no such edit is found.

    arithmetic: the last number becomes another number 0..8; open: the person's name becomes another
    name; list: one item becomes an item of another category; claim: the last verdict word flips
    (yes/no, right/wrong, true/false, correct/incorrect). The result is checked with world.features."""
    spots = [m for m in re.finditer(r"[A-Za-z]+|\d+", text) if _swaps(prompt, m.group())]
    if prompt.family in ("arithmetic", "claim"):
        spots = spots[-1:]   # the answer's number / the verdict: the last one in the text
    for m in rng.sample(spots, len(spots)):
        edited = text[:m.start()] + rng.choice(_swaps(prompt, m.group())) + text[m.end():]
        if not world.features(prompt, edited)["correct"]:
            return edited
    return None


_VERDICT_FLIP = {"yes": "no", "no": "yes", "right": "wrong", "wrong": "right", "true": "false", "false": "true",
                 "correct": "incorrect", "incorrect": "correct"}


def _swaps(prompt, word):
    """The words `word` may be replaced with in a minimal edit of an answer to `prompt` (case kept)."""
    case = (lambda w: w.capitalize()) if word[:1].isupper() else (lambda w: w)
    if prompt.family == "arithmetic" and word.isdigit():
        return [str(n) for n in range(9) if str(n) != word]
    if prompt.family == "open" and word in world.NAMES:
        return [n for n in world.NAMES if n != word]
    if prompt.family == "list" and word.lower() in world.ITEM_TO_CATEGORY:
        return [case(i) for i, c in world.ITEM_TO_CATEGORY.items() if c != world.ITEM_TO_CATEGORY[word.lower()]]
    if prompt.family == "claim" and word.lower() in _VERDICT_FLIP:
        return [case(_VERDICT_FLIP[word.lower()])]
    return []
