"""
The one transformer that all three stages share.

    tokens -> [trunk: embeddings, pre-LayerNorm blocks, final LayerNorm] -> hidden state (d_model)
           -> head

The *head* is what changes from stage to stage, exactly as in the source document's two diagrams:

    SFT policy    : hidden (d_model) -> Linear(d_model -> vocab_size) -> token logits   (class GPT)
    reward model  : hidden (d_model) -> Linear(d_model -> 1)          -> scalar reward  (class ScalarHeadModel)
    PPO critic    : the same scalar-head shape, read at every token     -> value V(s_t)

Ragged batches. Every forward takes an optional `mask` (B, T), True on real tokens and False on
padding. Position ids count real tokens only (pos = cumsum(mask) - 1), and attention ignores padded
keys, so a left-padded prompt gives exactly the same numbers as the unpadded prompt. This is what lets
one batch hold prompts and responses of different lengths during sampling, reward scoring and PPO.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.nn import functional as F


@dataclass
class GPTConfig:
    vocab_size: int = 1024   # tokens in the tokenizer, special tokens included
    block_size: int = 128    # longest sequence (prompt + response) the model sees
    n_layer: int = 4         # transformer blocks
    n_head: int = 4          # attention heads per block
    n_embd: int = 128        # d_model, the width of the hidden state
    dropout: float = 0.0     # dropout probability (0 for these small, short runs)


def positions_from_mask(mask):
    """Position id of each token = how many real tokens came before it. (B, T) bool -> (B, T) long."""
    return (mask.long().cumsum(dim=1) - 1).clamp(min=0)


class KVCache:
    """Keys and values of every layer for the tokens seen so far, plus which of them are real.

    k[layer], v[layer]: (B, n_head, S, head_dim); key_mask: (B, S) bool. Sampling appends one step at a
    time, so each new token attends to the cache instead of recomputing the whole prefix.
    """

    def __init__(self, n_layer):
        self.k = [None] * n_layer
        self.v = [None] * n_layer
        self.key_mask = None

    def __len__(self):
        return 0 if self.key_mask is None else self.key_mask.shape[1]


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        assert cfg.n_embd % cfg.n_head == 0, "n_embd must be divisible by n_head"
        self.n_head = cfg.n_head
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd)   # query, key, value projections in one matmul
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd)      # output projection
        self.dropout = cfg.dropout

    def forward(self, x, attn_mask, cache=None, layer=0):
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        # (B, T, C) -> (B, n_head, T, head_dim)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        if cache is not None:   # prepend the keys/values of earlier steps
            if cache.k[layer] is not None:
                k = torch.cat([cache.k[layer], k], dim=2)
                v = torch.cat([cache.v[layer], v], dim=2)
            cache.k[layer], cache.v[layer] = k, v
        # BEGIN SOLUTION lesson 1, exercise 1: causal self-attention over the real keys
        # softmax(q k^T / sqrt(head_dim) + mask) v   (Vaswani et al. 2017, eq. 1); masked entries get -inf
        if attn_mask is None:   # no padding, no cache: plain causal attention (fast path)
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                               dropout_p=self.dropout if self.training else 0.0)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask,
                                               dropout_p=self.dropout if self.training else 0.0)
        # END SOLUTION
        y = y.transpose(1, 2).contiguous().view(B, T, C)   # re-assemble the heads side by side
        return self.proj(y)


class MLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd)
        self.proj = nn.Linear(4 * cfg.n_embd, cfg.n_embd)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x):
        return self.drop(self.proj(F.gelu(self.fc(x))))


class Block(nn.Module):
    """Pre-LayerNorm transformer block: x + attn(LN(x)), then x + mlp(LN(x))."""

    def __init__(self, cfg):
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd)
        self.attn = CausalSelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.n_embd)
        self.mlp = MLP(cfg)

    def forward(self, x, attn_mask, cache=None, layer=0):
        x = x + self.attn(self.ln_1(x), attn_mask, cache, layer)
        x = x + self.mlp(self.ln_2(x))
        return x


class Trunk(nn.Module):
    """Everything up to the final hidden state: (B, T) token ids -> (B, T, d_model)."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)   # token embedding
        self.wpe = nn.Embedding(cfg.block_size, cfg.n_embd)   # learned position embedding
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg.n_layer)])
        self.ln_f = nn.LayerNorm(cfg.n_embd)

    def forward(self, idx, mask=None, cache=None):
        B, T = idx.shape
        past = len(cache) if cache is not None else 0
        assert past + T <= self.cfg.block_size, f"sequence of {past + T} tokens > block_size={self.cfg.block_size}"
        attn_mask = None
        if mask is None and cache is None:
            pos = torch.arange(T, device=idx.device).expand(B, T)
        else:
            if mask is None:
                mask = torch.ones(B, T, dtype=torch.bool, device=idx.device)
            if past:   # positions continue from the real tokens already in the cache
                pos = cache.key_mask.long().sum(1, keepdim=True) + positions_from_mask(mask)
                key_mask = torch.cat([cache.key_mask, mask], dim=1)   # (B, past + T)
            else:
                pos = positions_from_mask(mask)
                key_mask = mask
            if cache is not None:
                cache.key_mask = key_mask
            # query i (at absolute index past+i) may see key j if j <= past+i and key j is real;
            # it always sees itself, so a padded query never has an all-masked row (which gives NaN).
            S = past + T
            q_idx = torch.arange(past, S, device=idx.device)[:, None]
            k_idx = torch.arange(S, device=idx.device)[None, :]
            causal = k_idx <= q_idx                                             # (T, S)
            attn_mask = (causal[None] & key_mask[:, None, :]) | (k_idx == q_idx)[None]   # (B, T, S)
            attn_mask = attn_mask[:, None]                                      # (B, 1, T, S)
        x = self.drop(self.wte(idx) + self.wpe(pos))
        for layer, block in enumerate(self.blocks):
            x = block(x, attn_mask, cache, layer)
        return self.ln_f(x)


class GPT(nn.Module):
    """The language model: trunk + unembedding (d_model -> vocab_size)."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.trunk = Trunk(cfg)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        self.apply(_init_weights)
        for name, p in self.named_parameters():   # GPT-2: scale residual projections by 1/sqrt(2 * n_layer)
            if name.endswith("proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

    def forward(self, idx, mask=None, cache=None):
        """(B, T) token ids -> (B, T, vocab_size) logits for the next token at every position."""
        return self.lm_head(self.trunk(idx, mask, cache))

    def num_params(self):
        return sum(p.numel() for p in self.parameters())

    @torch.no_grad()
    def generate(self, prompts, max_new_tokens, eos_id, pad_id, temperature=1.0, top_k=None,
                 generator=None, use_cache=True):
        """Sample responses for a batch of prompts of different lengths.

        prompts: list of lists of token ids. They are LEFT-padded into one (B, Tp) batch, so that every
        row's next token is predicted at the same column. Each row stops at its own EOS; after that it
        is filled with pad_id. Returns (tokens (B, T_new) long, finished (B,) bool: the row produced EOS).
        With use_cache=False every step re-runs the whole sequence (the slow reference the tests use).
        """
        B, device = len(prompts), self.lm_head.weight.device
        idx, mask = pad(prompts, pad_id, left=True, device=device)
        Tp = idx.shape[1]
        assert Tp + max_new_tokens <= self.cfg.block_size, "prompt + response exceed block_size"
        cache = KVCache(self.cfg.n_layer) if use_cache else None
        finished = torch.zeros(B, dtype=torch.bool, device=device)
        out = []
        x, x_mask = idx, mask   # what is fed this step
        for _ in range(max_new_tokens):
            if use_cache:
                logits = self(x, x_mask, cache)[:, -1, :]
            else:
                logits = self(idx, mask)[:, -1, :]
            next_tok = sample_next(logits, temperature, top_k, generator)   # (B,)
            next_tok = torch.where(finished, torch.full_like(next_tok, pad_id), next_tok)
            out.append(next_tok)
            real = ~finished                      # this token is part of the response
            finished = finished | (next_tok == eos_id)
            x, x_mask = next_tok[:, None], real[:, None]
            if not use_cache:
                idx = torch.cat([idx, x], dim=1)
                mask = torch.cat([mask, x_mask], dim=1)
            if finished.all():
                break
        return torch.stack(out, dim=1), finished


def pad(seqs, pad_id, left=False, device="cpu"):
    """Lists of token ids -> (B, T) ids and the (B, T) bool mask of real tokens.

    Right padding (the default) is the training layout, [tokens][pad ...]; left padding is the sampling
    layout, [pad ...][tokens], so that every row's next token is predicted at the last column.
    """
    B, T = len(seqs), max(1, max(len(s) for s in seqs))
    idx = torch.full((B, T), pad_id, dtype=torch.long)
    mask = torch.zeros(B, T, dtype=torch.bool)
    for i, s in enumerate(seqs):
        cols = slice(T - len(s), T) if left else slice(0, len(s))
        idx[i, cols] = torch.tensor(s, dtype=torch.long)
        mask[i, cols] = True
    return idx.to(device), mask.to(device)


def sample_next(logits, temperature=1.0, top_k=None, generator=None):
    """Draw one token per row from softmax(logits / temperature), optionally only among the top k."""
    if temperature == 0.0:
        return logits.argmax(dim=-1)
    logits = logits.float() / temperature
    if top_k is not None:
        kth = torch.topk(logits, min(top_k, logits.size(-1)), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = F.softmax(logits, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)


class ScalarHeadModel(nn.Module):
    """The trunk with the unembedding replaced by Linear(d_model -> 1): the reward model and the critic.

    reward model: one scalar per sequence, read at its final real token (the EOS that ends the response);
    critic      : one scalar per position, V(s_t), read at every token.
    """

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.trunk = Trunk(cfg)
        self.trunk.apply(_init_weights)        # the same init as a fresh GPT (used by --init=random)
        # BEGIN SOLUTION lesson 3, exercise 1: the scalar head, d_model -> 1
        self.head = nn.Linear(cfg.n_embd, 1)   # the scalar head: d_model -> 1
        # std 1/sqrt(d_model + 1): a first reward of spread about 1 (lm-human-preferences), the loss a bit above log 2
        nn.init.normal_(self.head.weight, std=1.0 / math.sqrt(cfg.n_embd + 1))
        nn.init.zeros_(self.head.bias)
        # END SOLUTION

    @classmethod
    def from_gpt(cls, gpt):
        """Copy the SFT trunk; the new head starts from the small init above (the document's SFT init)."""
        model = cls(gpt.cfg)
        model.trunk.load_state_dict(gpt.trunk.state_dict())
        return model

    def forward(self, idx, mask=None, response_mask=None):
        """(B, T) -> (B, T) scalar at every position. (response_mask: read only by nanorm/reward.py::SurpriseRM.)"""
        return self.head(self.trunk(idx, mask)).squeeze(-1)

    def score(self, idx, mask, response_mask=None):
        """(B, T) -> (B,): the scalar at each row's final real token (right padding after it is ignored).
        response_mask (B, T), True on the response's tokens: only a SurpriseRM needs it."""
        values = self(idx, mask, response_mask)                            # (B, T)
        # BEGIN SOLUTION lesson 3, exercise 2: read the reward at each row's last real token
        last = mask.shape[1] - 1 - mask.flip(1).long().argmax(dim=1)       # index of the last True per row
        return values.gather(1, last[:, None]).squeeze(1)                  # (B,)
        # END SOLUTION


def _init_weights(module):
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
