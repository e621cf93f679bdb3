"""
The tokenizer: a tiktoken.Encoding whose byte-pair-encoding (BPE) merges nanorm learns itself.

Nothing can be downloaded here, so the ranks file that tiktoken normally fetches is learned from the
world's own text (or from a real-data JSONL) by `train_bpe` below, and kept in `data/` in tiktoken's
rank-file format: one line per token, "<base64 bytes> <rank>". The first 256 ranks are the single
bytes, so ANY string (gibberish included) can be encoded; every later rank is a merge of two earlier
tokens, in the order they were learned. Two special tokens follow the ranks: end-of-text (EOS), which
ends every response, and padding.

    python -m nanorm.tokenizer                                  # learn data/world.tiktoken from the world
    python -m nanorm.tokenizer --data=FILE.jsonl --out=data/hh.tiktoken --vocab_size=2048   # from real data

The chat template is fixed: the model sees "User: <prompt>\\nAssistant:" then " <response>" then EOS.
"""

import base64
import collections
import hashlib
import json
import os
import sys

import regex
import tiktoken

DATA_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data")
DEFAULT_RANKS = os.path.join(DATA_DIR, "world.tiktoken")
EOS, PAD = "<|endoftext|>", "<|pad|>"
# GPT-2's pre-tokenisation pattern: merges never cross these chunks (words, numbers, punctuation, spaces)
PAT_STR = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def format_prompt(text):
    """The chat template's prompt part; the response follows as " " + response, then EOS."""
    return f"User: {text}\nAssistant:"


class Tokenizer:
    """A thin wrapper over tiktoken.Encoding with the ids nanorm needs (eos_id, pad_id)."""

    def __init__(self, enc, name):
        self.enc, self.name = enc, name
        self.eos_id = enc.encode_single_token(EOS)
        self.pad_id = enc.encode_single_token(PAD)
        self.vocab_size = enc.n_vocab
        # a fingerprint of the merges: checkpoints store it, so a model is never run with another tokenizer
        self.fingerprint = hashlib.sha256(
            "".join(f"{k.hex()}:{v}," for k, v in sorted(enc._mergeable_ranks.items(), key=lambda kv: kv[1])).encode()
        ).hexdigest()[:16]

    def encode(self, text):
        # special-token strings typed by a user are encoded as plain text, never as EOS
        return self.enc.encode(text, disallowed_special=())

    def decode(self, ids):
        return self.enc.decode([i for i in ids if i not in (self.eos_id, self.pad_id)])

    def encode_prompt(self, text):
        return self.encode(format_prompt(text))

    def encode_response(self, text):
        """Response tokens, EOS included: what the policy must produce."""
        return self.encode(" " + text) + [self.eos_id]

    def decode_response(self, ids):
        return self.decode(ids).removeprefix(" ")


def load_tokenizer(name=DEFAULT_RANKS):
    """A path to a ranks file (learned by this module), or "gpt2" for tiktoken's own GPT-2 ranks."""
    if name == "gpt2":
        try:
            base = tiktoken.get_encoding("gpt2")   # needs tiktoken's cache or the network
        except Exception as e:
            raise SystemExit(f"error: tokenizer=gpt2: tiktoken could not load the gpt2 ranks ({e.__class__.__name__}); "
                             f"use the default learned tokenizer {DEFAULT_RANKS}")
        enc = tiktoken.Encoding("gpt2-nanorm", pat_str=base._pat_str, mergeable_ranks=base._mergeable_ranks,
                                special_tokens={EOS: base.n_vocab - 1, PAD: base.n_vocab})
        return Tokenizer(enc, "gpt2")
    if not os.path.exists(name):
        raise SystemExit(f"error: tokenizer file {name} not found; learn it with: python -m nanorm.tokenizer --out={name}")
    ranks = read_ranks(name)
    n = len(ranks)
    enc = tiktoken.Encoding(os.path.basename(name), pat_str=PAT_STR, mergeable_ranks=ranks,
                            special_tokens={EOS: n, PAD: n + 1})
    root = os.path.dirname(DATA_DIR)
    shown = os.path.relpath(name, root) if os.path.abspath(name).startswith(root + os.sep) else name
    return Tokenizer(enc, shown)


def read_ranks(path):
    ranks = {}
    with open(path, "rb") as f:
        for lineno, line in enumerate(f, 1):
            parts = line.split()
            if len(parts) != 2 or not parts[1].isdigit():
                raise SystemExit(f"error: {path}:{lineno}: expected '<base64 token> <rank>'")
            ranks[base64.b64decode(parts[0])] = int(parts[1])
    if sorted(ranks.values()) != list(range(len(ranks))):
        raise SystemExit(f"error: {path}: ranks are not 0..{len(ranks) - 1} without gaps")
    return ranks


def write_ranks(path, ranks):
    """Write atomically: a reader never sees half a file."""
    from nanorm.checkpoint import atomic_open
    with atomic_open(path, "wb") as f:
        for token, rank in sorted(ranks.items(), key=lambda kv: kv[1]):
            f.write(base64.b64encode(token) + b" " + str(rank).encode() + b"\n")


def train_bpe(texts, vocab_size):
    """Learn byte-pair merges: start from the 256 bytes, repeatedly merge the most frequent adjacent pair.

    Returns tiktoken's mergeable_ranks {token bytes: rank}. Pair counts are kept up to date
    incrementally (only the words that contain the merged pair are revisited), so real-data corpora
    of a few MB train in seconds.
    """
    assert vocab_size >= 256 + 2, "vocab_size must leave room for the 256 bytes and the 2 special tokens"
    pat = regex.compile(PAT_STR)
    word_counts = collections.Counter()
    for text in texts:
        word_counts.update(pat.findall(text))
    words = [list(w.encode("utf-8")) for w in word_counts]   # each word as a list of token ids
    counts = list(word_counts.values())
    vocab = {i: bytes([i]) for i in range(256)}
    pair_counts = collections.Counter()
    where = collections.defaultdict(set)   # pair -> ids of the words that contain it
    for wi, w in enumerate(words):
        for pair in zip(w, w[1:]):
            pair_counts[pair] += counts[wi]
            where[pair].add(wi)
    n_merges = vocab_size - 2 - 256
    for new_id in range(256, 256 + n_merges):
        if not pair_counts:
            break
        # most frequent pair; ties broken by the smaller pair so the result is deterministic
        best = min(pair_counts, key=lambda p: (-pair_counts[p], p))
        if pair_counts[best] < 2:
            break
        vocab[new_id] = vocab[best[0]] + vocab[best[1]]
        for wi in list(where[best]):
            w, c = words[wi], counts[wi]
            for pair in zip(w, w[1:]):   # remove this word's old pairs ...
                pair_counts[pair] -= c
                if pair_counts[pair] <= 0:
                    del pair_counts[pair]
                where[pair].discard(wi)
            merged, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == best:
                    merged.append(new_id)
                    i += 2
                else:
                    merged.append(w[i])
                    i += 1
            words[wi] = merged
            for pair in zip(merged, merged[1:]):   # ... and add its new ones
                pair_counts[pair] += c
                where[pair].add(wi)
        where.pop(best, None)
    return {token: rank for rank, token in vocab.items()}


def jsonl_texts(path):
    """Every string found in a JSONL file (any of the real-data formats), for learning merges."""
    def strings(obj):
        if isinstance(obj, str):
            yield obj
        elif isinstance(obj, dict):
            for v in obj.values():
                yield from strings(v)
        elif isinstance(obj, list):
            for v in obj:
                yield from strings(v)
    texts = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                texts.extend(strings(json.loads(line)))
            except json.JSONDecodeError as e:
                raise SystemExit(f"error: {path}:{lineno}: not valid JSON ({e.msg})")
    return texts


def main(argv):
    from nanorm.config import parse_config
    from dataclasses import dataclass

    @dataclass
    class TokenizerConfig:
        out: str = DEFAULT_RANKS   # where to write the ranks file
        vocab_size: int = 1024     # total tokens: 256 bytes + merges + 2 special tokens
        data: str = ""             # a JSONL file to learn from; empty = the simulated world's corpus
        seed: int = 0              # seed of the world corpus

    cfg = parse_config(TokenizerConfig, argv)
    if cfg.data:
        texts = jsonl_texts(cfg.data)
    else:
        from nanorm import world
        texts = world.corpus(cfg.seed)
        texts += [format_prompt("")] * (len(texts) // 4)   # the chat template's words, about once per prompt
    ranks = train_bpe(texts, cfg.vocab_size)
    write_ranks(cfg.out, ranks)
    tok = load_tokenizer(cfg.out)
    n_tokens = sum(len(tok.encode(t)) for t in texts)
    n_bytes = sum(len(t.encode("utf-8")) for t in texts)
    print(f"wrote {os.path.relpath(cfg.out)}: {len(ranks)} ranks + 2 special = {tok.vocab_size} tokens; "
          f"{n_bytes / n_tokens:.2f} bytes per token on {len(texts)} texts")


if __name__ == "__main__":
    main(sys.argv[1:])
