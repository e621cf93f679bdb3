"""
Turning prompts and responses into token batches, and sampling responses from a policy.

Two layouts, both with a boolean `mask` (True on real tokens):

  training  : [prompt tokens][response tokens, EOS][pad ...]       right-padded (pack_sequences)
  sampling  : [pad ...][prompt tokens][response tokens, EOS][pad]  prompts left-padded (GPT.generate)

Position ids come from the mask (see nanorm/model.py), so both layouts give the same numbers.

One encoding rule for every stage (`encode_example`): a response keeps its first tokens, EOS only if it
finished, and a prompt too long for the block keeps its LAST tokens (the latest turns of a dialogue).
"""

from collections import Counter

import torch

from nanorm.config import autocast
from nanorm.model import pad


def pack_sequences(prompts, responses, pad_id, device="cpu"):
    """prompts, responses: lists of token-id lists -> right-padded batch.

    Returns tokens (B, T) long, mask (B, T) bool (real tokens) and response_mask (B, T) bool
    (the response tokens, EOS included: the ones the policy is trained to produce).
    """
    tokens, mask = pad([p + r for p, r in zip(prompts, responses)], pad_id, device=device)   # (B, T) each
    response_mask = mask.clone()
    for i, p in enumerate(prompts):
        response_mask[i, :len(p)] = False          # the prompt is context, not part of the response
    return tokens, mask, response_mask


def demonstration_counts(families, per_prompt, balance=True):
    """How many demonstrations each prompt gets, given the prompts' families.

    balance=False: per_prompt each. balance=True: the same total, len(families) * per_prompt, shared
    equally between the families present, so a small family's prompts get more each (rounded, at least 1).
    """
    if not balance:
        return [per_prompt] * len(families)
    size = Counter(families)
    per_family = per_prompt * len(families) / len(size)
    return [max(1, round(per_family / size[f])) for f in families]


def encode_example(tok, prompt, response, block_size, max_response_tokens, finished=True):
    """(prompt text, response text) -> (prompt ids, response ids) that fit in block_size tokens.

    The one encoding rule of every stage (SFT data, RM and DPO comparisons):
      - the response ends with EOS if it finished (a demonstration, or a sample that stopped by itself);
        a sample that hit the length limit (finished=False) gets none, as the sampler gave it none;
      - it keeps its first max_response_tokens tokens (a cut response loses its EOS, exactly as a
        sample that hits the limit does);
      - the prompt is then cut on the LEFT to the room that is left (a long dialogue keeps its latest
        turns and the template's final "Assistant:").
    """
    response = (tok.encode_response(response) if finished else tok.encode(" " + response))[:max_response_tokens]
    room = block_size - len(response)
    if room < 1:
        raise ValueError(f"block_size={block_size} leaves no room for a prompt beside "
                         f"max_response_tokens={max_response_tokens}")
    prompt = tok.encode_prompt(prompt)
    return prompt[max(0, len(prompt) - room):], response


@torch.no_grad()
def sample_responses(model, tok, prompt_texts, max_new_tokens, temperature=1.0, top_k=None,
                     batch_size=256, generator=None, device="cpu", dtype="float32", max_prompt_tokens=None):
    """Sample one response per prompt. Returns (texts, finished, token lists, EOS included when finished).

    finished[i] is False when the response hit max_new_tokens without producing EOS (truncated): the
    gold score and the PPO reward both treat that case specially, so it is never silently dropped.
    max_prompt_tokens: keep only the last this-many tokens of a longer prompt (None: prompts are not cut).
    """
    model.eval()
    texts, finished, token_lists = [], [], []
    keep = slice(-max_prompt_tokens, None) if max_prompt_tokens else slice(None)
    for start in range(0, len(prompt_texts), batch_size):
        chunk = [tok.encode_prompt(t)[keep] for t in prompt_texts[start:start + batch_size]]
        with autocast(torch.device(device) if isinstance(device, str) else device, dtype):
            out, done = model.generate(chunk, max_new_tokens, tok.eos_id, tok.pad_id, temperature=temperature,
                                       top_k=top_k, generator=generator)
        for row, d in zip(out.tolist(), done.tolist()):
            ids = row[:row.index(tok.eos_id) + 1] if d else [i for i in row if i != tok.pad_id]
            texts.append(tok.decode_response(ids))
            finished.append(bool(d))
            token_lists.append(ids)
    return texts, finished, token_lists


def response_mask_from(responses, eos_id):
    """(B, Tr) sampled response ids -> (B, Tr) bool: True up to and including the first EOS (all True if none)."""
    is_eos = (responses == eos_id).long()
    return (is_eos.cumsum(dim=1) - is_eos) == 0   # no EOS strictly before this position


def join_prompt_response(prompt_ids, responses, response_mask, pad_id):
    """[left-padded prompt | response] -> tokens (B, Tp + Tr), mask (B, Tp + Tr), and Tp.

    This is the layout GPT.generate samples in, so the log-probs computed on it are those of the sampler.
    """
    p_idx, p_mask = pad(prompt_ids, pad_id, left=True, device=responses.device)
    tokens = torch.cat([p_idx, responses], dim=1)
    mask = torch.cat([p_mask, response_mask], dim=1)
    return tokens, mask, p_idx.shape[1]


def joined_response_mask(mask, n_prompt):
    """The response's tokens in join_prompt_response's layout: mask (B, Tp + Tr) with the first Tp columns off."""
    response_mask = mask.clone()
    response_mask[:, :n_prompt] = False
    return response_mask


def token_logprobs(logits, tokens):
    """log pi(token | context) at every position: logits (B, T, V), where logits[:, t] predicts tokens[:, t]
    (already shifted by one), and token ids (B, T) -> (B, T). PPO (below) and DPO (nanorm/dpo.py) both use it."""
    # BEGIN SOLUTION lesson 5, exercise 7: the log-probability of each token
    # log_softmax over the vocabulary, then pick each position's token (in float32)
    logp = torch.log_softmax(logits.float(), dim=-1)            # (B, T, V)
    return logp.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)    # (B, T)
    # END SOLUTION


def response_logprobs(model, tokens, mask, n_prompt, temperature=1.0):
    """log pi(y_t | x, y_<t) of each response token, with the SAMPLING temperature applied to the logits
    (the sampler drew from softmax(logits / T), so that is the distribution whose log-probs and KL count).

    Returns logprobs (B, Tr) and the temperature-scaled logits (B, Tr, V) that predicted them.
    """
    logits = model(tokens, mask)[:, n_prompt - 1:-1].float() / temperature   # position t-1 predicts token t
    return token_logprobs(logits, tokens[:, n_prompt:]), logits
