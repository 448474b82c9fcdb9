"""Jitted PPO for memory policies: rollout (scan over steps, env inside), GAE / V-trace,
segment-wise BPTT update, schedules, and the training loop glue.

    rollout.py     collect [T, B] transitions and the memory at each segment's first step
    advantages.py  GAE with terminated / truncated, optional V-trace clipping
    loss.py        clipped surrogate, clipped value loss, entropy
    update.py      segments -> shuffled minibatches -> epochs of optimizer steps
    schedules.py   lr warmup + cosine, entropy / clip / value-clip decays
    train.py       TrainState, make_iteration (one jitted rollout + advantages + update)
"""
