"""The planner's models: the predictor and the goal-image encoder on one device, loaded from the settings and
checked to work together.

Rules: the encoder's features must be the predictor's (tokens, embed_dim, the encoder it was trained on) and both
spaces need distinct names, else `PlannerSetupError`; goal images the encoder turns into non-finite features raise
`InvalidGoalError`. The world-model loaders are imported when first needed.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from jepa_planner.mpc.errors import InvalidGoalError, PlannerSetupError
from jepa_planner.mpc.settings import PlannerSettings
from jepa_world_model.devices import resolve_device


def check_models(encoder: Any, predictor: Any) -> None:
    """Raise PlannerSetupError unless the encoder's features are what the predictor was built and trained on."""
    made = (encoder.num_tokens(), encoder.embed_dim)
    wanted = (predictor.config.tokens_per_frame, predictor.config.embed_dim)
    if made != wanted:
        raise PlannerSetupError(f"the encoder makes {made[0]} tokens x embed_dim {made[1]}, the predictor expects "
                                f"{wanted[0]} x embed_dim {wanted[1]}")
    trained_on = getattr(predictor, "encoder_id", None)
    if trained_on and trained_on != encoder.model_id:
        raise PlannerSetupError(f"the predictor was trained on encoder {trained_on}, the encoder is "
                                f"{encoder.model_id}")
    for kind, space in (("action", predictor.action_space), ("state", predictor.state_space)):
        if not space.names or len(set(space.names)) != len(space.names):
            raise PlannerSetupError(f"the predictor's {kind} space needs distinct names, got {list(space.names)}")


class PlannerModels:
    """The predictor and the goal-image encoder on one device, checked to work together.

    `planning_tolerance` is the predictor's calibrated goal tolerance (None: it has none).
    """

    def __init__(self, encoder: torch.nn.Module, predictor: torch.nn.Module, device: torch.device | str = "cpu",
                 image_size: int = 0, crop: str = "center", planning_tolerance: float | None = None) -> None:
        check_models(encoder, predictor)
        self.planning_tolerance = planning_tolerance
        self.device = torch.device(device)
        self.encoder = encoder.to(self.device).eval()
        self.predictor = predictor.to(self.device).eval()
        self.model_id: str = encoder.model_id
        self.feature_shape = (predictor.config.tokens_per_frame, predictor.config.embed_dim)
        self.action_space = predictor.action_space
        self.state_names: tuple[str, ...] = tuple(predictor.state_space.names)
        self.image_size = image_size or encoder.config.crop_size
        self.crop = crop

    @classmethod
    def load(cls, settings: PlannerSettings) -> "PlannerModels":
        """Load the models named by `settings` on its device (an empty encoder: the one saved with the predictor);
        PlannerSetupError in one line when they cannot be loaded or do not fit together."""
        from jepa_world_model import load_predictor
        from jepa_world_model.checkpoints import bundle
        from jepa_world_model.errors import WorldModelError

        if settings.torch_threads:
            torch.set_num_threads(settings.torch_threads)
        try:
            device = resolve_device(settings.device)
            predictor = load_predictor(settings.predictor)
            encoder = bundle.encoder_for(settings.encoder, settings.predictor).load()
            tolerance = bundle.planning_tolerance(settings.predictor)
        except (WorldModelError, RuntimeError, OSError) as exc:
            raise PlannerSetupError(f"cannot load the models: {exc}") from exc
        try:
            return cls(encoder, predictor, device, settings.image_size, settings.crop, tolerance)
        except PlannerSetupError as exc:
            raise PlannerSetupError(bundle.mismatch_line(settings.encoder, settings.predictor, str(exc))) from None

    def tensor(self, features: np.ndarray) -> torch.Tensor:
        """Features (N, D) as a float32 tensor on the device."""
        return torch.as_tensor(np.asarray(features, dtype=np.float32), device=self.device)

    def encode_image(self, rgb: np.ndarray) -> torch.Tensor:
        """An RGB goal image (H, W, 3) uint8 -> features (N, D); ValueError on a bad image."""
        from jepa_world_model.data.image_encoding import prepare_image

        image = np.ascontiguousarray(prepare_image(rgb, self.image_size, self.crop))
        with torch.inference_mode():
            features = self.encoder(torch.from_numpy(image).unsqueeze(0))[0].float()
        if not torch.isfinite(features).all():
            raise InvalidGoalError("the encoder returned non-finite features")
        return features.clone()
