"""The networks: video ViT encoder, action-conditioned predictor and its cached rollout, the mask-token predictor
of pretraining, and their building blocks (blocks, RoPE, preprocessing, feature normalisation)."""
