"""Offline evaluations of trained models on recordings: held-out rollout error (`jepa eval-offline`) and the
linear probe (`--probe`)."""
