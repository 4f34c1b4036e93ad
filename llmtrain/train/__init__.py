"""The training loop and what it needs (optimizer, schedule, checkpoints, data order).

Knows no model family, no task and no Hydra: it could train anything.
"""
