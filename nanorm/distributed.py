"""
Data parallelism: the same script in N processes, each on its share of every batch.

    python train_sft.py                                          # one process: world size 1
    torchrun --standalone --nproc_per_node=2 train_sft.py        # two on this machine (gloo on CPU, nccl on CUDA)
    torchrun --nnodes=2 --nproc_per_node=8 --node_rank=0 --rdzv_backend=c10d \
             --rdzv_endpoint=HOST:29500 --rdzv_id=nanorm train_rm.py    # two machines (node_rank 1 on the other)

torchrun starts the processes and tells each its RANK (0..N-1) and WORLD_SIZE. Each process builds the
same model from the same seed, draws the same batch indices, and keeps its slice of them
(`shard`). After backward each process holds the gradient of its own slice; `average_gradients` sums
them over the processes (an all-reduce), so every process takes the same optimizer step and the weights
never drift apart. That is all data parallelism is. torch's DistributedDataParallel wrapper does the same
sum, in buckets that overlap with the backward pass; at this size one all-reduce after backward costs
less to read and nothing measurable to run.

Equal steps need one more thing: a batch's loss is a mean (over tokens, or over prompts), and the slices
may hold different numbers of them. `global_share` weights each slice's mean by its share of the whole
batch, so the summed gradient is exactly the full batch's (to float rounding). With N processes a
script computes the numbers one process computes with the same flags: --batch_size and
--prompts_per_batch are the whole batch, not each process's.

What is split: the training batches (SFT, RM) and the RM's sampling of responses to rank. What is not:
evaluations run whole in every process (the same numbers everywhere; only rank 0's files are kept:
nanorm/checkpoint.py::OutDir), and PPO and DPO run in one process (their rollout statistics, KL
controller and reference log-probs would each need a reduction of their own; they fit on one device).
"""

import os

import torch
import torch.distributed as dist


def init(device):
    """Join the process group when torchrun started several processes; a no-op for one. Returns the device
    this process uses: cuda:LOCAL_RANK on a GPU node, else `device` as given."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        on_cuda = device.type == "cuda"
        dist.init_process_group("nccl" if on_cuda else "gloo")
        if on_cuda:
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
    return device


def world_size():
    return dist.get_world_size() if dist.is_initialized() else 1


def rank():
    return dist.get_rank() if dist.is_initialized() else 0


def is_main():
    """Rank 0: the process that prints and whose files are kept."""
    return rank() == 0


def shard(items):
    """This process's slice of a batch: every world_size-th item, starting at its rank."""
    return items[rank()::world_size()]


def gather_shards(local, n):
    """The inverse of shard(): every process's slice (a list, in order) back into one list of n items, on
    every process. One process: `local` itself."""
    if world_size() == 1:
        return list(local)
    slices = [None] * world_size()
    dist.all_gather_object(slices, list(local))
    out = [None] * n
    for r, part in enumerate(slices):
        out[r::world_size()] = part
    return out


def own_stream(gen):
    """A sampling stream of this process's own, so that the processes' shards are not sampled with the
    same random numbers (one process: gen itself). Each process draws one seed from gen, which keeps gen
    in step across the processes."""
    if world_size() == 1:
        return gen
    seed = int(torch.randint(2**62, (1,), generator=gen, device=gen.device)) + rank()
    return torch.Generator(device=gen.device).manual_seed(seed)


def all_sum(x):
    """The sum of a number over the processes (a float; one process: x itself)."""
    if world_size() == 1:
        return float(x)
    t = torch.tensor([float(x)], dtype=torch.float64)
    dist.all_reduce(t)
    return t.item()


def global_share(n_local):
    """This slice's weight on its own mean loss, so that after average_gradients the step is the whole
    batch's: n_local / n_total of the batch, times world_size (the average divides by it again)."""
    n_total = all_sum(n_local)
    return n_local * world_size() / n_total if n_total > 0 else 0.0


def batch_mean(x_local, share):
    """The whole batch's mean of a per-slice mean x_local weighted by global_share: sum(share * x) / N
    (one process: x_local itself)."""
    return all_sum(x_local * share) / world_size()


def average_gradients(model):
    """Every parameter's gradient averaged over the processes, in place (one flat all-reduce). A slice with
    nothing to learn from counts as a zero gradient."""
    if world_size() == 1:
        return
    params = [p for p in model.parameters() if p.requires_grad]
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world_size()
    at = 0
    for p, g in zip(params, grads):
        p.grad = flat[at:at + g.numel()].view_as(g).clone()
        at += g.numel()


def broadcast_parameters(model):
    """Rank 0's weights to every process (they start equal from the same seed; this makes sure)."""
    if world_size() == 1:
        return
    for t in list(model.parameters()) + list(model.buffers()):
        dist.broadcast(t.data, src=0)


def finish():
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
