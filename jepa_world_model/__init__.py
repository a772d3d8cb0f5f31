"""ROS-free V-JEPA 2 style world model: video ViT encoder, action-conditioned predictor, checkpoints.

Public API (imported lazily, so ``import jepa_world_model.<submodule>`` does not pull in torch)::

    load_encoder(source, **overrides) -> Encoder        # (B,3,H,W)/(B,H,W,3)/(B,T,3,H,W) -> (B,N,D)
    load_predictor(source, **overrides) -> ACPredictor  # forward(features, actions, states), rollout(...)
    save_checkpoint(directory, encoder=None, predictor=None, metadata=None)
    resolve_model_source(name)                          # "default" -> the shipped model's directory

``source``: a preset ("tiny", "vit_l", "vit_h", "vit_g", "vit_g_384"; predictors "tiny", "ac_vit_g"), "default"
(the shipped sim model), a jepa_ros checkpoint directory, an official ``.pt`` file, or (encoders) a Hugging Face
hub id / local directory.
"""
import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(__name__, submod_attrs={
    "networks.encoder": ["load_encoder", "Encoder"],
    "networks.predictor": ["ACPredictor"],
    "checkpoints.predictor_loading": ["load_predictor"],
    "checkpoints.shipped": ["resolve_model_source"],
    "checkpoints.files": ["save_checkpoint", "read_checkpoint_config"],
    "config": ["EncoderConfig", "PredictorConfig", "ActionSpace", "StateSpace"],
    "errors": ["WorldModelError", "ConfigError", "InputError", "CheckpointError", "ModelNotAvailableError"],
})
