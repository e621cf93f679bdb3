"""DPO as train_dpo.py runs it: the flat K-wise batch, response-only log-probs, the start at log 2, a smoke run.

The loss equations themselves are checked in tests/test_dpo_math.py.
"""

import copy
import json
import math
import os
import random
import subprocess
import sys

import pytest
import torch

from nanorm import world
from nanorm.dpo import (batch_logprobs, encode_comparison, kwise_dpo_loss, pack_kwise, reference_logprobs)
from nanorm.model import GPT, GPTConfig
from nanorm.prefdata import Comparison
from nanorm.reward import bradley_terry_loss, kwise_pairs
from nanorm.tokenizer import load_tokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOK = load_tokenizer()


def tiny_gpt(seed=0, vocab_size=TOK.vocab_size, block_size=96):
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=vocab_size, block_size=block_size, n_layer=2, n_head=2, n_embd=32)).eval()


def world_comparisons(n=6, seed=0):
    """Real ranked comparisons: K = 2..5 demonstrations of a world prompt, ranked by a labeler."""
    rng = random.Random(seed)
    labeler = world.make_labelers(3, seed=seed)[0]
    out = []
    for i, prompt in enumerate(world.make_split("train", n, seed=seed)):
        responses = list(dict.fromkeys(world.demonstration(prompt, rng) for _ in range(8)))[:2 + i % 4]
        finished = [True] * len(responses)
        finished[-1] = i % 2 == 0            # some responses "hit the length limit": no EOS for them
        out.append(Comparison(prompt.text, responses, labeler.rank(prompt, responses, rng, finished=finished),
                              meta={"world_prompt": prompt.to_dict(), "finished": finished}))
    return out


def test_encode_comparison_eos_only_when_finished():
    c = world_comparisons(2)[1]                   # its last response is marked unfinished
    pairs, ranking = encode_comparison(TOK, c, max_response_tokens=48, block_size=96)
    assert ranking == c.ranking and len(pairs) == len(c.responses)
    for (prompt, ids), text, done in zip(pairs, c.responses, c.meta["finished"]):
        assert prompt == TOK.encode_prompt(c.prompt)
        assert (ids[-1] == TOK.eos_id) == done
        assert TOK.decode_response(ids) == text
    # a cut response loses its EOS, and the prompt is cut on the left to fit block_size
    pairs, _ = encode_comparison(TOK, c, max_response_tokens=3, block_size=10)
    assert all(len(r) <= 3 and TOK.eos_id not in r for _, r in pairs)
    assert all(prompt == TOK.encode_prompt(c.prompt)[-(10 - len(r)):] for prompt, r in pairs)


@pytest.mark.exercise("1.1", "3.4", "3.5", "5.7", "8.2")
def test_batch_logprobs_response_only_ragged_flat_layout():
    """The flat K-wise batch (prompts of different lengths, responses of different lengths, right padding)
    gives, for every response, the same log pi(y | x) as a loop over single unpadded sequences."""
    model = tiny_gpt(vocab_size=60, block_size=32)
    g = torch.Generator().manual_seed(0)
    ids = lambda n: torch.randint(0, 58, (n,), generator=g).tolist()
    kwise = lambda prompt, responses, ranking: ([(prompt, r) for r in responses], ranking)
    examples = [kwise(ids(3), [ids(5), ids(1), ids(9)], [1, 2, 0]),
                kwise(ids(11), [ids(2), ids(7)], [0, 1]),
                kwise(ids(1), [ids(4), ids(4), ids(12), ids(6)], [3, 0, 2, 1])]
    tokens, response_mask, idx_w, idx_l, group = pack_kwise(examples, pad_id=59)
    assert tokens.shape == (9, 11 + 7) and response_mask.sum().item() == 5 + 1 + 9 + 2 + 7 + 4 + 4 + 12 + 6
    with torch.no_grad():
        flat = batch_logprobs(model, tokens, response_mask)                        # (M,)

        expected = []
        for pairs, _ in examples:                                                # the slow reference
            for prompt, r in pairs:
                logp = torch.log_softmax(model(torch.tensor([prompt + r]))[0], dim=-1)   # (len, V), no padding
                expected.append(sum(logp[len(prompt) - 1 + t, tok].item() for t, tok in enumerate(r)))
    assert torch.allclose(flat, torch.tensor(expected), atol=1e-5)
    # the pairs index the flat vector: prompt 1's winner (local 0) sits at flat position 3 + 0
    w, l, grp = kwise_pairs([r for _, r in examples])
    assert torch.equal(idx_w, w) and torch.equal(idx_l, l) and torch.equal(group, grp)
    assert (idx_w[group == 1].tolist(), idx_l[group == 1].tolist()) == ([3], [4])


@pytest.mark.exercise("1.1", "3.3", "3.4", "3.5", "5.7", "8.1", "8.2")
def test_at_initialisation_rewards_are_zero_and_loss_is_log2():
    """Policy == reference: on a real batch (world comparisons, the script's encoding, batching and up-front
    reference log-probs) every implicit reward is ~0, every pair loss is log 2, the K-wise mean too."""
    policy = tiny_gpt()
    ref = copy.deepcopy(policy)
    examples = [encode_comparison(TOK, c, 48, 96) for c in world_comparisons(6)]
    ref_logps = reference_logprobs(ref, examples, TOK.pad_id)                  # whole dataset, chunks of 32
    batch = [4, 1, 2]                                                             # a training batch: other padding
    tokens, response_mask, idx_w, idx_l, group = pack_kwise([examples[i] for i in batch], TOK.pad_id)
    policy.train()
    pi_logp = batch_logprobs(policy, tokens, response_mask)
    ref_logp = torch.cat([ref_logps[i] for i in batch])
    beta = 0.1
    r_hat = beta * (pi_logp - ref_logp)
    assert r_hat.abs().max().item() < 1e-5
    assert (pi_logp < 0).all()                                                    # real log-probs, not zeros
    loss, stats = kwise_dpo_loss(pi_logp, ref_logp, idx_w, idx_l, group, beta)
    assert loss.item() == pytest.approx(math.log(2), abs=1e-5)
    assert abs(stats["reward_margin"]) < 1e-5 and abs(stats["rewards_chosen"]) < 1e-5
    loss.backward()                                                               # and a gradient to follow
    assert all(p.grad is not None for p in policy.parameters())


@pytest.mark.exercise("3.3", "3.4", "3.5", "8.1")
def test_kwise_dpo_loss_is_the_reward_models_loss_on_implicit_rewards():
    """1/C(K,2) per prompt, then mean over prompts: bradley_terry_loss with r = beta * (log pi - log pi_ref)."""
    g = torch.Generator().manual_seed(1)
    rankings = [[2, 0, 1], [0, 1], [4, 1, 3, 0, 2], [1, 0, 3, 2]]               # K = 3, 2, 5, 4 (3 + 1 + 10 + 6 pairs)
    idx_w, idx_l, group = kwise_pairs(rankings)
    pi = -10 * torch.rand(14, generator=g, dtype=torch.float64)
    ref = -10 * torch.rand(14, generator=g, dtype=torch.float64)
    loss, stats = kwise_dpo_loss(pi, ref, idx_w, idx_l, group, beta=0.3)
    assert loss.item() == pytest.approx(bradley_terry_loss(0.3 * (pi - ref), idx_w, idx_l, group).item(), rel=1e-12)
    r = 0.3 * (pi - ref)
    acc_per_prompt = [((r[idx_w] > r[idx_l]).double()[group == i].mean()).item() for i in range(4)]
    assert stats["reward_accuracy"] == pytest.approx(sum(acc_per_prompt) / 4)


def run(script, *args):
    result = subprocess.run([sys.executable, os.path.join(ROOT, script), "--device=cpu", "--threads=1", *args],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{script} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


@pytest.mark.exercise("1.1", "2.1", "3.1", "3.2", "3.3", "3.4", "3.5", "4.1", "4.2", "4.3", "5.7", "8.1", "8.2")
def test_train_dpo_smoke(tmp_path, tiny_sft, tiny_rm):
    """The command line of train_dpo.py on the session's tiny SFT and RM (20 ranked prompts, 10 held out)."""
    sft_ckpt, rm_dir = tiny_sft.dir / "ckpt.pt", tiny_rm.dir
    # a stand-in PPO checkpoint (the SFT weights under kind "ppo") exercises the comparison with PPO
    sft = torch.load(sft_ckpt, weights_only=True)
    torch.save({**sft, "kind": "ppo"}, tmp_path / "ppo.pt")
    out = run("train_dpo.py", f"--sft_ckpt={sft_ckpt}", f"--rm_dir={rm_dir}",
              f"--ppo_ckpt={tmp_path}/ppo.pt", f"--out_dir={tmp_path}/dpo", "--prompts_per_batch=4", "--epochs=1",
              "--warmup_steps=2", "--eval_interval=3", "--n_eval_prompts=8", "--n_test_prompts=12")
    assert "win vs PPO" in out and "DPO implicit reward" in out

    ckpt = torch.load(tmp_path / "dpo" / "ckpt.pt", weights_only=True)
    assert ckpt["kind"] == "dpo" and ckpt["step"] == 5                        # 20 prompts / 4 per batch
    assert ckpt["config"]["beta"] == 0.1 and ckpt["tokenizer"]["fingerprint"] == TOK.fingerprint
    model = GPT(GPTConfig(**ckpt["model_config"]))
    model.load_state_dict(ckpt["state_dict"])
    assert any(not torch.equal(ckpt["state_dict"][k], sft["state_dict"][k]) for k in sft["state_dict"])   # it moved

    report = json.load(open(tmp_path / "dpo" / "eval.json"))
    assert {"n_test_prompts", "beta", "sft", "dpo", "ppo", "implicit_reward", "rm"} <= set(report)
    assert report["n_test_prompts"] == 12
    for key in ("win_rate_vs_sft", "win_rate_vs_ppo", "gold", "kl", "length", "proxy"):
        assert key in report["dpo"]
    assert 0.0 <= report["implicit_reward"]["accuracy"] <= 1.0 and report["implicit_reward"]["n_prompts"] == 10
    assert 0.0 <= report["rm"]["accuracy"] <= 1.0 and "gold_accuracy" in report["rm"]
    metrics = [json.loads(line) for line in open(tmp_path / "dpo" / "metrics.jsonl")]
    assert [m["step"] for m in metrics] == [0, 1, 2, 3, 4, 5]
    assert {"loss", "margin", "acc"} <= set(metrics[1]) and "kl" in metrics[3]["eval"]
    assert metrics[1]["loss"] == pytest.approx(math.log(2), abs=1e-4)         # first step: policy == reference
