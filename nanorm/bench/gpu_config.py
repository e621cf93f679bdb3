"""
The GPU configuration: a bigger model, more data and bf16, for one modern GPU.

    python -m nanorm.bench.pipeline --config=gpu       # runs the three stages with these flags

Budget: under 8 GB of GPU memory and under 15 minutes for the whole pipeline on one modern GPU (one NVIDIA
H200: 58 s + 88 s + 162 s, 2.4 GB at most; lesson 05).
Against the default (CPU) configuration:
  model : 8 layers, 8 heads, d_model 384 (~15M parameters) instead of 4 / 4 / 128 (~1M)
  SFT   : batches of 256 instead of 64, more steps, dropout 0.1
  RM    : each training prompt ranked 4 times (--rounds=4: 4x the comparisons, cheap on a GPU), 32 prompts
          per step, the whole validation split held out
  PPO   : rollouts of 256 instead of 64, 150 iterations instead of 60, a smaller learning rate
Every value below is an ordinary `--key=value` flag of the stage's script: any of them can be overridden.
"""

MODEL = {"n_layer": 8, "n_head": 8, "n_embd": 384, "block_size": 96}

FLAGS = {
    "sft": {**MODEL, "dropout": 0.1, "demos_per_prompt": 8, "batch_size": 256, "max_iters": 1200, "lr": 1e-3,
            "min_lr": 1e-4, "warmup_iters": 100, "eval_interval": 200, "n_eval_prompts": 544,
            "dtype": "bfloat16"},
    "rm": {"n_prompts": 0, "rounds": 4, "prompts_per_batch": 32, "lr": 3e-4, "eval_interval": 50,
           "n_eval_prompts": 317, "dtype": "bfloat16"},
    "ppo": {"n_iters": 150, "batch_size": 256, "minibatch_size": 64, "lr": 1.5e-5, "critic_lr": 5e-5,
            "eval_interval": 25, "sample_interval": 50, "n_eval_prompts": 300, "n_test_prompts": 544,
            "best_of": 16, "dtype": "bfloat16"},
}

# --smoke: the same flags with the work cut to seconds, to check the path runs (on CPU, before a GPU run)
SMOKE = {
    "sft": {"n_train_prompts": 64, "demos_per_prompt": 2, "batch_size": 16, "max_iters": 4, "eval_interval": 2,
            "n_eval_prompts": 16},
    "rm": {"n_prompts": 16, "prompts_per_batch": 8, "eval_interval": 1, "n_eval_prompts": 8},
    "ppo": {"n_iters": 2, "batch_size": 16, "minibatch_size": 8, "eval_interval": 1, "sample_interval": 1,
            "n_eval_prompts": 8, "n_test_prompts": 8, "best_of": 2},
}
