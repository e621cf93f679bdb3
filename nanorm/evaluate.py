"""
Judging a policy in the world: proxy reward (the RM), gold score, KL to SFT, and what it learned to do.

Used by train_ppo.py, train_dpo.py and the reward-hacking lab, so that every stage is measured the same
way. Because gold is code, a policy can be judged by what a careful human wants, not only by the RM.

    proxy  : the normalised RM score of a finished response; a truncated one (no EOS) gets the fixed
             truncation penalty instead, as in PPO
    gold   : world.gold, in [-1, 1]
    kl     : sum over response tokens of log pi(y_t) - log pi_sft(y_t) for the policy's own samples,
             a Monte-Carlo estimate of KL(pi || pi_sft) per response, in nats
    win    : the gold labeler compares one sample of each policy per prompt; ties count half
"""

import numpy as np
import torch

from nanorm import world
from nanorm.checkpoint import load_checkpoint, model_config
from nanorm.config import autocast
from nanorm.data import join_prompt_response, response_logprobs, sample_responses
from nanorm.model import GPT, ScalarHeadModel


def load_policy(path, tok, device, kinds=("sft", "ppo", "dpo")):
    ckpt = load_checkpoint(path, kinds, tok)
    model = GPT(model_config(ckpt)).to(device)
    model.load_state_dict(ckpt["state_dict"])
    return model.eval(), ckpt


def load_reward_model(path, tok, device):
    """The RM with its normalisation (gain * r + bias) folded into the scalar head, so it outputs the
    normalised reward directly: SFT samples score mean 0, std 1."""
    ckpt = load_checkpoint(path, "rm", tok)
    rm = ScalarHeadModel(model_config(ckpt)).to(device)
    rm.load_state_dict(ckpt["state_dict"])
    with torch.no_grad():
        rm.head.weight.mul_(ckpt["reward_gain"])
        rm.head.bias.mul_(ckpt["reward_gain"]).add_(ckpt["reward_bias"])
    return rm.eval(), ckpt


def pad_responses(token_lists, pad_id, device):
    """Ragged response id lists -> (B, Tr) right-padded ids and their mask."""
    Tr = max(1, max(len(t) for t in token_lists))
    ids = torch.full((len(token_lists), Tr), pad_id, dtype=torch.long)
    mask = torch.zeros(len(token_lists), Tr, dtype=torch.bool)
    for i, t in enumerate(token_lists):
        ids[i, :len(t)] = torch.tensor(t, dtype=torch.long)
        mask[i, :len(t)] = True
    return ids.to(device), mask.to(device)


def _batches(n, size):
    return [slice(i, min(n, i + size)) for i in range(0, n, size)]


@torch.no_grad()
def rm_scores(rm, tok, prompt_texts, token_lists, finished, truncation_penalty, device, dtype="float32",
              batch_size=128):
    """Normalised RM score of each response, read at its final real token; truncated ones get the penalty."""
    out = []
    for s in _batches(len(prompt_texts), batch_size):
        responses, r_mask = pad_responses(token_lists[s], tok.pad_id, device)
        empty = ~r_mask.any(dim=1)
        r_mask[empty, 0] = True   # an empty response is read at a pad token; it is truncated anyway
        tokens, mask, _ = join_prompt_response([tok.encode_prompt(t) for t in prompt_texts[s]], responses,
                                               r_mask, tok.pad_id)
        with autocast(device, dtype):
            out.append(rm.score(tokens, mask).float().cpu())
    scores = torch.cat(out)
    return torch.where(torch.tensor(finished), scores, torch.full_like(scores, truncation_penalty))


@torch.no_grad()
def kl_to_ref(policy, ref, tok, prompt_texts, token_lists, temperature, device, dtype="float32", batch_size=128):
    """Per-response sum_t [log pi(y_t) - log pi_ref(y_t)] on the policy's samples (B,)."""
    out = []
    for s in _batches(len(prompt_texts), batch_size):
        responses, r_mask = pad_responses(token_lists[s], tok.pad_id, device)
        tokens, mask, Tp = join_prompt_response([tok.encode_prompt(t) for t in prompt_texts[s]], responses,
                                                r_mask, tok.pad_id)
        with autocast(device, dtype):
            lp, _ = response_logprobs(policy, tokens, mask, Tp, temperature)
            ref_lp, _ = response_logprobs(ref, tokens, mask, Tp, temperature)
        out.append(((lp - ref_lp) * r_mask).sum(1).cpu())
    return torch.cat(out)


def describe(prompts, texts, finished):
    """Gold and surface features of each sample: what the policy learned to do."""
    rows = []
    for p, t, f in zip(prompts, texts, finished):
        feats = world.features(p, t)
        rows.append({"family": p.family, "gold": world.gold(p, t, f), "finished": f, "n_words": feats["n_words"],
                     "n_format": feats["n_format"],
                     "agrees": feats["agrees"],                                 # claim family only
                     "sycophantic": bool(feats["agrees"]) and not feats["correct"]})
    return rows


def summarise(rows, proxy=None, kl=None):
    """Means over samples, overall and per family."""
    def block(rs, idx):
        claim = [r for r in rs if r["agrees"] is not None]
        d = {"n": len(rs), "gold": float(np.mean([r["gold"] for r in rs])),
             "eos_rate": float(np.mean([r["finished"] for r in rs])),
             "length": float(np.mean([r["n_words"] for r in rs])),
             "format": float(np.mean([r["n_format"] for r in rs]))}
        if claim:
            d["agree_rate"] = float(np.mean([bool(r["agrees"]) for r in claim]))
            d["sycophancy_rate"] = float(np.mean([r["sycophantic"] for r in claim]))
        if proxy is not None:
            d["proxy"] = float(proxy[idx].mean())
        if kl is not None:
            d["kl"] = float(kl[idx].mean())
        return d
    out = block(rows, torch.arange(len(rows)))
    out["per_family"] = {}
    for fam in world.FAMILIES:
        idx = [i for i, r in enumerate(rows) if r["family"] == fam]
        if idx:
            out["per_family"][fam] = block([rows[i] for i in idx], torch.tensor(idx))
    return out


def evaluate_policy(policy, ref, rm, tok, prompts, max_new_tokens, temperature, truncation_penalty, generator,
                    device, dtype="float32"):
    """Sample once per prompt and measure proxy, gold, KL and behaviour. Returns (summary, samples)."""
    texts, finished, token_lists = sample_responses(policy, tok, [p.text for p in prompts], max_new_tokens,
                                                    temperature=temperature, generator=generator, device=device,
                                                    dtype=dtype)
    proxy = rm_scores(rm, tok, [p.text for p in prompts], token_lists, finished, truncation_penalty, device, dtype)
    kl = kl_to_ref(policy, ref, tok, [p.text for p in prompts], token_lists, temperature, device, dtype)
    rows = describe(prompts, texts, finished)
    for row, t, px, k in zip(rows, texts, proxy.tolist(), kl.tolist()):
        row.update(text=t, proxy=px, kl=k)
    return summarise(rows, proxy, kl), rows


def gold_win_rate(prompts, texts_a, finished_a, texts_b, finished_b):
    """How often the gold labeler prefers a's sample to b's for the same prompt (ties count half)."""
    return float(np.mean([world.gold_compare(p, a, b, fa, fb)
                          for p, a, fa, b, fb in zip(prompts, texts_a, finished_a, texts_b, finished_b)]))


def best_of_n(policy, rm, tok, prompts, n, max_new_tokens, temperature, truncation_penalty, generator, device,
              dtype="float32"):
    """Draw n samples per prompt and keep the one the RM scores highest (the RM-only baseline)."""
    flat = [p.text for p in prompts for _ in range(n)]
    texts, finished, token_lists = sample_responses(policy, tok, flat, max_new_tokens, temperature=temperature,
                                                    generator=generator, device=device, dtype=dtype)
    scores = rm_scores(rm, tok, flat, token_lists, finished, truncation_penalty, device, dtype).view(len(prompts), n)
    best = scores.argmax(dim=1).tolist()
    pick = [i * n + b for i, b in enumerate(best)]
    return ([texts[i] for i in pick], [finished[i] for i in pick], [token_lists[i] for i in pick],
            scores.max(dim=1).values)
