"""Checkpoint I/O: our safetensors + JSON format, official .pt and Hugging Face files, the model bundle (a predictor
with its encoder and tolerance), the shipped models' resolver and `jepa model-info`."""
