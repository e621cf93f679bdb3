"""
Pieces the experiments share, so that no experiment imports another:

    load_sft_and_rm   the SFT policy and the normalised reward model of a config's checkpoints
"""

import torch

from nanorm.evaluate import load_policy, load_reward_model
from nanorm.tokenizer import load_tokenizer


def load_sft_and_rm(cfg):
    """What an analysis needs from a config with sft_ckpt, rm_ckpt, tokenizer, threads and device:
    (device, tokenizer, SFT policy, normalised reward model)."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = torch.device(cfg.device)
    tok = load_tokenizer(cfg.tokenizer)
    sft, _ = load_policy(cfg.sft_ckpt, tok, device, kinds="sft")
    rm, _ = load_reward_model(cfg.rm_ckpt, tok, device)
    return device, tok, sft, rm
