"""The learned BPE tokenizer: tiktoken's file format, round trips, special tokens."""

import tiktoken
from tiktoken.load import load_tiktoken_bpe

from nanorm.tokenizer import DEFAULT_RANKS, EOS, format_prompt, load_tokenizer, train_bpe, write_ranks

TEXTS = ["What is 7 plus 5?", "7 plus 5 is 12.", "Name three fruits.", "Apple, pear, plum."] * 20


def test_bpe_starts_from_bytes_and_merges_frequent_pairs():
    ranks = train_bpe(TEXTS, vocab_size=280)
    assert all(ranks[bytes([i])] == i for i in range(256))   # every byte is a token: anything encodes
    assert len(ranks) == 280 - 2                              # room left for EOS and PAD
    assert b" plus" in ranks                                  # a frequent word became one token
    # each merge is built from earlier tokens (what tiktoken's encoder assumes)
    by_rank = sorted(ranks, key=ranks.get)
    for token in by_rank[256:]:
        assert any(token[:i] in ranks and token[i:] in ranks and max(ranks[token[:i]], ranks[token[i:]]) < ranks[token]
                   for i in range(1, len(token)))


def test_rank_file_is_tiktokens_format(tmp_path):
    path = str(tmp_path / "t.tiktoken")
    ranks = train_bpe(TEXTS, vocab_size=280)
    write_ranks(path, ranks)
    assert load_tiktoken_bpe(path) == ranks                   # tiktoken's own loader reads it back
    tok = load_tokenizer(path)
    assert isinstance(tok.enc, tiktoken.Encoding)
    assert tok.vocab_size == 280 and tok.eos_id == 278 and tok.pad_id == 279


def test_round_trip_on_any_text(tmp_path):
    path = str(tmp_path / "t.tiktoken")
    write_ranks(path, train_bpe(TEXTS, vocab_size=280))
    tok = load_tokenizer(path)
    for text in ["What is 7 plus 5?", "xq zz 1 1 1 !!", "- apple\n- **pear**", "café ünïcode 🙂", ""]:
        assert tok.decode(tok.encode(text)) == text
    assert tok.decode_response(tok.encode_response("Apple, pear.")) == "Apple, pear."
    assert tok.encode_response("hi")[-1] == tok.eos_id


def test_user_typed_special_token_is_plain_text(tmp_path):
    path = str(tmp_path / "t.tiktoken")
    write_ranks(path, train_bpe(TEXTS, vocab_size=280))
    tok = load_tokenizer(path)
    ids = tok.encode(f"say {EOS} now")
    assert tok.eos_id not in ids


def test_shipped_world_tokenizer_is_compact():
    tok = load_tokenizer(DEFAULT_RANKS)
    ids = tok.encode_prompt("What is 7 plus 5?")
    assert tok.decode(ids) == format_prompt("What is 7 plus 5?")
    assert len(ids) <= 14        # a few tokens per word: merges were learned from the world's text
    assert tok.vocab_size <= 2048
