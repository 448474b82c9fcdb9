"""Jitted PPO for memory policies: rollout (scan over steps, env inside), GAE / V-trace,
segment-wise BPTT update, schedules, and the training loop glue.

    rollout.py     collect [T, B] transitions and the memory at each segment's first step
    advantages.py  GAE with terminated / truncated, optional V-trace clipping
    loss.py        clipped surrogate, clipped value loss, entropy
    heads.py       factored categorical heads: summed log-prob / entropy, per-head action masks, sampling
    update.py      segments -> shuffled minibatches -> epochs of optimizer steps
    schedules.py   lr warmup + cosine, entropy / clip / value-clip decays
    trainer.py     TrainState, Trainer (one jitted rollout + advantages + update per iteration)
    run.py         fit: the Python loop (logging, checkpoints, exact resume)
    evaluate.py    run_episodes: jitted greedy or sampled evaluation episodes
    logging.py     CSV, TensorBoard, progress bar, curve PNG
"""
