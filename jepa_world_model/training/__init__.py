"""Training recipes on one shared loop (``loop``): the predictor (`jepa train`, ``train``) and the encoder's
self-supervised pretraining (`jepa pretrain`, ``pretrain``), with their masks, collapse guard and held-out verdict.
The loop's parts: ``distributed`` (device, ranks), ``data_order``, ``optimizer``, ``step_checkpoints``, ``metrics``;
``run_record`` (what a checkpoint's metadata records of the options), ``overrides`` and ``errors``. Neither recipe
imports the other."""
