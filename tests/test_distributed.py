"""Data parallelism (nanorm/distributed.py): the same script in two gloo processes, each on half of every
batch, against one process on the whole batch. The steps must be the same steps: equal losses at every
step, equal final weights and equal evaluation figures, to float rounding. Then the pieces on their own:
shard / gather_shards round trip, and the one-process case that everything else runs in."""

import json
import os
import random
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

from nanorm import distributed, world
from nanorm.config import start

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--n_layer=1", "--n_head=2", "--n_embd=32", "--threads=1", "--device=cpu"]


def run(script, processes, *args):
    """script with args, in one plain process or in `processes` started by torchrun (gloo on this CPU)."""
    launch = [sys.executable] if processes == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    result = subprocess.run(launch + [os.path.join(ROOT, script), *args], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, f"{script} x{processes} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def metrics(out_dir):
    return [json.loads(line) for line in open(os.path.join(out_dir, "metrics.jsonl"))]


def weights(out_dir):
    return torch.load(os.path.join(out_dir, "ckpt.pt"), weights_only=True)["state_dict"]


def assert_same_run(one, two, keys, atol, weight_atol):
    """Two runs took the same steps: every logged number, the final weights and eval.json alike. (AdamW
    divides each step by the root of its running squared gradient, so where a gradient is nearly zero a
    rounding difference in it can move that weight by up to the learning rate: hence weight_atol. The RM's
    head.bias is such a weight: the Bradley-Terry loss sees only differences of rewards, so its gradient is
    zero but for rounding.)"""
    m1, m2 = metrics(one), metrics(two)
    assert len(m1) == len(m2) > 0
    for a, b in zip(m1, m2):
        for key in keys:
            assert (a.get(key) is None) == (b.get(key) is None), key
            if a.get(key) is not None:
                assert b[key] == pytest.approx(a[key], abs=atol), (a["step"], key)
    w1, w2 = weights(one), weights(two)
    assert w1.keys() == w2.keys()
    for name in w1:
        assert torch.allclose(w1[name], w2[name], atol=weight_atol), name
    e1, e2 = (json.load(open(os.path.join(d, "eval.json"))) for d in (one, two))
    numbers = lambda d: {k: v for k, v in d.items() if isinstance(v, (int, float)) and "seconds" not in k}
    assert numbers(e2) == pytest.approx(numbers(e1), abs=10 * atol)


# SFT (1.1, 2.1) and the RM (3.x, 4.x) run here
@pytest.mark.exercise("1.1", "2.1", "3.1", "3.2", "3.3", "3.4", "3.5", "4.1", "4.2", "4.3")
def test_two_processes_take_the_steps_of_one(tmp_path):
    # SFT: 8 sequences a step, 4 per process; the token counts of the halves differ, so this checks the
    # weighting of each half's mean (global_share) as well as the averaging of the gradients
    sft = ["train_sft.py", *TINY, "--max_iters=4", "--warmup_iters=1", "--batch_size=8", "--n_train_prompts=40",
           "--n_eval_prompts=4", "--eval_interval=4"]
    run(*sft[:1], 1, *sft[1:], f"--out_dir={tmp_path}/sft1")
    out = run(*sft[:1], 2, *sft[1:], f"--out_dir={tmp_path}/sft2")
    assert "2 processes" in out and out.count("total time") == 1          # rank 0 alone prints
    assert sorted(os.listdir(tmp_path)) == ["sft1", "sft2"]                # and alone writes
    assert_same_run(tmp_path / "sft1", tmp_path / "sft2", ("loss", "grad_norm", "val_loss"), atol=1e-5,
                    weight_atol=1e-5)

    # the RM, on rankings in a file (the world's demonstrations, ranked by one of its labelers): 3 prompts a
    # step, 2 + 1 per process, and the held-out part of the file evaluated by both
    rng = random.Random(0)
    labeler = world.make_labelers(3, seed=0)[0]
    with open(tmp_path / "rankings.jsonl", "w") as f:
        for p in world.make_split("train", 16, seed=0):
            responses = list(dict.fromkeys(world.demonstration(p, rng) for _ in range(4)))
            if len(responses) > 1:
                f.write(json.dumps({"prompt": p.text, "responses": responses,
                                    "ranking": labeler.rank(p, responses, rng)}) + "\n")
    rm = ["train_rm.py", f"--sft_ckpt={tmp_path}/sft1/ckpt.pt", "--threads=1", "--device=cpu",
          f"--data={tmp_path}/rankings.jsonl", "--eval_frac=0.25", "--eval_interval=1", "--prompts_per_batch=3"]
    run(*rm[:1], 1, *rm[1:], f"--out_dir={tmp_path}/rm1")
    run(*rm[:1], 2, *rm[1:], f"--out_dir={tmp_path}/rm2")
    assert_same_run(tmp_path / "rm1", tmp_path / "rm2", ("loss", "acc", "heldout_loss", "heldout_acc"),
                    atol=1e-5, weight_atol=3e-4)


def test_stages_that_run_in_one_process_refuse_torchrun(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(SystemExit, match=r"^error: .* runs in one process; start it with python, not torchrun"):
        start(SimpleNamespace(device="cpu"))        # train_ppo.py's and train_dpo.py's start: data_parallel=False


def test_one_process_is_the_identity():
    assert (distributed.world_size(), distributed.rank(), distributed.is_main()) == (1, 0, True)
    items = list(range(7))
    assert distributed.shard(items) == items and distributed.gather_shards(items, 7) == items
    assert distributed.global_share(5) == 1.0 and distributed.batch_mean(0.25, 1.0) == 0.25
    gen = torch.Generator()
    assert distributed.own_stream(gen) is gen      # one process samples exactly as before


def _three_ranks(rank, port, results):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="3")
    torch.set_num_threads(1)
    distributed.init(torch.device("cpu"))
    try:
        mine = distributed.shard(list("abcdefgh"))                 # 8 items over 3 ranks: 3, 3 and 2 of them
        gathered = distributed.gather_shards(mine, 8)
        model = torch.nn.Linear(2, 1, bias=False)
        model.weight.grad = torch.full((1, 2), float(rank))        # ranks hold gradients 0, 1 and 2
        distributed.average_gradients(model)
        results.put((rank, mine, gathered, model.weight.grad.tolist(), distributed.all_sum(rank + 1),
                     distributed.global_share(len(mine))))
    finally:
        distributed.finish()


def test_three_ranks_shard_gather_sum_and_average():
    import socket
    import torch.multiprocessing as mp
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    mp.start_processes(_three_ranks, args=(port, results), nprocs=3, start_method="spawn")
    got = sorted(results.get(timeout=60) for _ in range(3))
    assert [g[1] for g in got] == [["a", "d", "g"], ["b", "e", "h"], ["c", "f"]]
    assert all(g[2] == list("abcdefgh") for g in got)              # every rank has every item, in order
    assert all(g[3] == [[1.0, 1.0]] for g in got)                   # (0 + 1 + 2) / 3
    assert all(g[4] == 6.0 for g in got)                            # 1 + 2 + 3
    assert [g[5] for g in got] == pytest.approx([3 * 3 / 8, 3 * 3 / 8, 2 * 3 / 8])   # n_local * world / n_total
