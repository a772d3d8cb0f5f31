"""Training recipes: the predictor (`jepa train`) and the encoder's self-supervised pretraining (`jepa pretrain`),
with their masks, collapse guard and held-out verdict."""
