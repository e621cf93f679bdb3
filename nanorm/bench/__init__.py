"""
Benchmarks: how fast nanorm is, measured. Each one is a module with a short table and a JSON file:

    python -m nanorm.bench.train_step     # achieved FLOP/s of an SFT step vs this machine's matmul peak
    python -m nanorm.bench.generation     # KV-cached vs uncached sampling; batch-size scaling
    python -m nanorm.bench.reward_model   # K-wise vs pair batching of the Bradley-Terry loss; RM scoring rate
    python -m nanorm.bench.pipeline       # wall time and peak memory of each stage (--config=gpu: the GPU run)

House rule: a speed claim is a RATIO of two things timed in the same run (interleaved, medians), never an
absolute time compared across runs or machines, and never a timed assertion in a test.
Results go to out/bench/NAME.json, or to $OUT/NAME.json when the OUT environment variable is set.
"""
