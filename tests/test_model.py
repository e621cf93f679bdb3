"""The GPT: causal masking, ragged (padded) batches, KV-cache equivalence, the scalar head."""

import pytest
import torch

from nanorm.model import GPT, GPTConfig, KVCache, ScalarHeadModel

CFG = GPTConfig(vocab_size=50, block_size=32, n_layer=2, n_head=2, n_embd=16)
PAD, EOS = 49, 48


def make_model(seed=0):
    torch.manual_seed(seed)
    return GPT(CFG).eval()


@pytest.mark.exercise("1.1")
def test_changing_a_future_token_never_changes_earlier_logits():
    model = make_model()
    x = torch.randint(0, 48, (2, 12))
    y = x.clone()
    y[:, 7] = (y[:, 7] + 1) % 48
    with torch.no_grad():
        a, b = model(x), model(y)
    assert torch.allclose(a[:, :7], b[:, :7], atol=1e-6)
    assert not torch.allclose(a[:, 7:], b[:, 7:], atol=1e-4)   # the change is seen from position 7 on


@pytest.mark.exercise("1.1")
def test_explicit_mask_path_matches_the_causal_fast_path():
    model = make_model()
    x = torch.randint(0, 48, (3, 10))
    with torch.no_grad():
        fast = model(x)
        masked = model(x, torch.ones(3, 10, dtype=torch.bool))
    assert torch.allclose(fast, masked, atol=1e-5)


@pytest.mark.exercise("1.1")
def test_left_padding_gives_the_same_logits_as_no_padding():
    model = make_model()
    seq = torch.randint(0, 48, (1, 7))
    padded = torch.cat([torch.full((1, 5), PAD), seq], dim=1)
    mask = torch.cat([torch.zeros(1, 5, dtype=torch.bool), torch.ones(1, 7, dtype=torch.bool)], dim=1)
    with torch.no_grad():
        alone = model(seq)
        batched = model(padded, mask)
    assert torch.isfinite(batched).all()   # padded queries never produce NaN
    assert torch.allclose(alone, batched[:, 5:], atol=1e-5)


@pytest.mark.exercise("1.1")
def test_ragged_batch_rows_match_their_unpadded_selves():
    model = make_model()
    rows = [torch.randint(0, 48, (n,)) for n in (3, 9, 6)]
    T = 9
    idx = torch.full((3, T), PAD)
    mask = torch.zeros(3, T, dtype=torch.bool)
    for i, r in enumerate(rows):   # left pad
        idx[i, T - len(r):] = r
        mask[i, T - len(r):] = True
    with torch.no_grad():
        out = model(idx, mask)
        for i, r in enumerate(rows):
            assert torch.allclose(out[i, T - len(r):], model(r[None])[0], atol=1e-5)


@pytest.mark.exercise("1.1")
def test_kv_cache_step_by_step_matches_full_forward():
    model = make_model()
    x = torch.randint(0, 48, (2, 10))
    mask = torch.ones(2, 10, dtype=torch.bool)
    mask[0, :3] = False   # row 0 is left-padded
    with torch.no_grad():
        full = model(x, mask)
        cache = KVCache(CFG.n_layer)
        first = model(x[:, :6], mask[:, :6], cache)
        steps = [model(x[:, t:t + 1], mask[:, t:t + 1], cache) for t in range(6, 10)]
    incremental = torch.cat([first] + steps, dim=1)
    assert torch.allclose(full[mask], incremental[mask], atol=1e-5)


@pytest.mark.exercise("1.1")
def test_cached_and_uncached_generation_give_the_same_tokens():
    model = make_model(1)
    prompts = [[1, 2, 3], [4, 5, 6, 7, 8, 9], [10]]
    outs = []
    for use_cache in (True, False):
        g = torch.Generator().manual_seed(123)
        outs.append(model.generate(prompts, 12, EOS, PAD, temperature=1.0, top_k=20, generator=g,
                                   use_cache=use_cache))
    assert torch.equal(outs[0][0], outs[1][0])
    assert torch.equal(outs[0][1], outs[1][1])


@pytest.mark.exercise("1.1")
@pytest.mark.parametrize("seed", [2, 4, 5])   # several models: one of them can pass a padding bug by luck
def test_generation_of_a_padded_batch_matches_each_prompt_alone_greedy(seed):
    model = make_model(seed)
    prompts = [[1, 2, 3], [4, 5, 6, 7, 8, 9]]
    batched, _ = model.generate(prompts, 8, EOS, PAD, temperature=0.0)
    for i, p in enumerate(prompts):
        alone, _ = model.generate([p], 8, EOS, PAD, temperature=0.0)
        n = alone.shape[1]
        assert torch.equal(batched[i, :n], alone[0])


@pytest.mark.exercise("1.1")
def test_generation_stops_at_eos():
    model = make_model(3)
    with torch.no_grad():   # hidden state = all ones, and only EOS reads it: EOS has the top logit
        model.trunk.ln_f.weight.zero_()
        model.trunk.ln_f.bias.fill_(1.0)
        model.lm_head.weight.zero_()
        model.lm_head.weight[EOS] = 1.0
    out, finished = model.generate([[1, 2], [3]], 5, EOS, PAD, temperature=0.0)
    assert finished.all()
    assert out.shape == (2, 1) and (out[:, 0] == EOS).all()   # stopped as soon as every row ended
    with torch.no_grad():
        model.lm_head.weight[EOS] = -1.0                       # now EOS is never chosen
    out, finished = model.generate([[1, 2], [3]], 5, EOS, PAD, temperature=0.0)
    assert not finished.any() and out.shape == (2, 5)          # runs to the length limit


@pytest.mark.exercise("1.1")
def test_rows_that_finish_early_are_padded_while_others_continue():
    model = make_model(4)
    g = torch.Generator().manual_seed(0)
    out, finished = model.generate([[1, 2, 3]] * 16, 10, EOS, PAD, temperature=3.0, generator=g)
    for row, done in zip(out.tolist(), finished.tolist()):
        if done:
            k = row.index(EOS)
            assert all(t == PAD for t in row[k + 1:])
        else:
            assert EOS not in row


@pytest.mark.exercise("1.1", "3.1", "3.2")
def test_scalar_head_reads_the_final_real_token_not_padding():
    torch.manual_seed(0)
    rm = ScalarHeadModel(CFG).eval()
    seq = torch.randint(0, 48, (1, 6))
    padded = torch.cat([seq, torch.full((1, 4), PAD)], dim=1)   # right padding after the EOS
    mask = torch.cat([torch.ones(1, 6, dtype=torch.bool), torch.zeros(1, 4, dtype=torch.bool)], dim=1)
    with torch.no_grad():
        r_alone = rm.score(seq, torch.ones(1, 6, dtype=torch.bool))
        r_padded = rm.score(padded, mask)
        per_token = rm(seq)
    assert torch.allclose(r_alone, r_padded, atol=1e-5)
    assert torch.allclose(r_alone, per_token[:, -1], atol=1e-6)


@pytest.mark.exercise("1.1", "3.1")
def test_scalar_head_model_copies_the_sft_trunk():
    gpt = make_model(5)
    rm = ScalarHeadModel.from_gpt(gpt)
    x = torch.randint(0, 48, (2, 8))
    with torch.no_grad():
        assert torch.allclose(rm.trunk(x), gpt.trunk(x))
    assert rm.head.weight.shape == (1, CFG.n_embd)
    assert rm.head.bias.item() == 0.0


@pytest.mark.exercise("1.1", "5.7")
def test_mean_logprob_of_a_ragged_batch_matches_each_response_alone():
    """nanorm/evaluate.py::mean_logprob (batched, prompts left-padded, responses right-padded) against a
    naive reference: each prompt + response forwarded alone, the log-softmax read token by token."""
    from nanorm.evaluate import mean_logprob
    from nanorm.tokenizer import load_tokenizer
    tok = load_tokenizer()
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=48, n_layer=2, n_head=2, n_embd=32)).eval()
    prompts = ["What is 2 plus 2?", "Name two fruits.", "Say hello to Sam for me."]
    responses = [tok.encode_response("4.") + [tok.eos_id], tok.encode_response("Apple, pear and plum, I hope."),
                 tok.encode_response("Hello!") + [tok.eos_id]]
    got = mean_logprob(model, tok, prompts, responses, "cpu", batch_size=2)   # two batches, ragged within one
    for text, resp, value in zip(prompts, responses, got):
        ids = tok.encode_prompt(text) + resp
        with torch.no_grad():
            logp = torch.log_softmax(model(torch.tensor([ids]))[0], dim=-1)   # (T, V)
        n = len(tok.encode_prompt(text))
        expected = sum(logp[n - 1 + t, tok_id].item() for t, tok_id in enumerate(resp)) / len(resp)
        assert value.item() == pytest.approx(expected, abs=1e-5)
