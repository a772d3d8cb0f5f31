"""Action-conditioned predictor: causality, rollout (batch vs sequential, vs teacher forcing), errors."""
import pytest
import torch
import torch.nn.functional as F

from jepa_world_model import ACPredictor, ActionSpace, ConfigError, InputError, PredictorConfig, load_predictor
from jepa_world_model.networks.predictor import block_causal_mask
from jepa_world_model.networks.state_update import context_actions

N, D = 64, 64


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def predictor() -> ACPredictor:
    return load_predictor("tiny")


@pytest.fixture(scope="module")
def residual_predictor() -> ACPredictor:
    return load_predictor("tiny", residual=True)


@pytest.fixture(params=["plain", "residual"])
def either_predictor(request, predictor, residual_predictor) -> ACPredictor:
    """Both readouts: the official one and the residual one (the change from the input frame)."""
    return predictor if request.param == "plain" else residual_predictor


def _randn(*shape: int, seed: int = 0, scale: float = 1.0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * scale


def test_tiny_preset_attributes(predictor):
    cfg = predictor.config
    assert isinstance(cfg, PredictorConfig)
    assert (cfg.action_dim, cfg.state_dim, cfg.embed_dim, cfg.tokens_per_frame) == (3, 3, D, N)
    assert cfg.action_space.names == ("dx", "dy", "dz") and cfg.state_space.names == ("x", "y", "z")
    assert cfg.action_to_state == (0, 1, 2)
    assert predictor.max_horizon == cfg.max_steps == 8
    names = set(predictor.state_dict())
    for key in ("predictor_embed.weight", "action_encoder.weight", "state_encoder.weight",
                "predictor_blocks.1.attn.qkv.weight", "predictor_norm.weight", "predictor_proj.bias"):
        assert key in names


def test_dims_are_overridable():
    p = load_predictor("tiny", action_dim=7, state_dim=7)
    assert (p.config.action_dim, p.config.state_dim) == (7, 7)
    assert p.action_encoder.weight.shape == (64, 7)
    joints = load_predictor("tiny", action_dim=4, state_dim=3, state_update="none")
    out = joints(_randn(2, 2, N, D), _randn(2, 2, 4), _randn(2, 2, 3))
    assert out.shape == (2, 2, N, D)
    with pytest.raises(ConfigError, match="no action dim maps to a state dim"):
        load_predictor("tiny", action_dim=4, state_dim=3)


def test_forward_shape_and_block_causality(predictor):
    feats, acts, states = _randn(2, 4, N, D), _randn(2, 4, 3, seed=1), _randn(2, 4, 3, seed=2)
    with torch.no_grad():
        base = predictor(feats, acts, states)
        assert base.shape == (2, 4, N, D)
        changed_acts = acts.clone()
        changed_acts[:, 2:] += 5.0
        changed_feats = feats.clone()
        changed_feats[:, 3] = -feats[:, 3]
        out = predictor(changed_feats, changed_acts, states)
    torch.testing.assert_close(out[:, :2], base[:, :2], atol=1e-5, rtol=0)
    assert (out[:, 2:] - base[:, 2:]).abs().amax() > 1e-2  # later actions do matter


def test_residual_readout_adds_the_change_to_the_frame_it_was_given(predictor, residual_predictor):
    assert "residual" not in predictor.config.to_dict()  # models without it keep their model_id
    assert residual_predictor.config.to_dict()["residual"] is True
    assert residual_predictor.model_id != load_predictor("tiny", residual=False).model_id
    with pytest.raises(ConfigError, match="residual must be true or false"):
        PredictorConfig(residual="yes")
    still = load_predictor("tiny", residual=True)
    with torch.no_grad():
        still.predictor_proj.weight.zero_()
        still.predictor_proj.bias.zero_()
    feats = F.layer_norm(_randn(2, 3, N, D), (D,))  # layer-normed, as the encoder's features are
    acts, states = _randn(2, 3, 3, seed=1, scale=0.03), _randn(2, 3, 3, seed=2, scale=0.2)
    with torch.no_grad():
        torch.testing.assert_close(still(feats, acts, states), feats)  # no change predicted: the frame itself
    rolled = still.rollout(feats[:1], states[:1], _randn(4, 3, 3, seed=3, scale=0.03))
    torch.testing.assert_close(rolled, F.layer_norm(feats[:1, -1:], (D,), eps=1e-5).expand(4, 3, -1, -1),
                               atol=1e-5, rtol=1e-5)
    with torch.no_grad():  # and a trained change is added to it, not substituted for it
        plain_out = load_predictor("tiny")(feats, acts, states)
        residual_out = residual_predictor(feats, acts, states)
    torch.testing.assert_close(residual_out - feats, plain_out, atol=1e-5, rtol=1e-5)


def test_block_causal_mask_layout():
    mask = block_causal_mask(3, 2)
    expected = torch.tensor([[1, 1, 0, 0, 0, 0]] * 2 + [[1, 1, 1, 1, 0, 0]] * 2 + [[1] * 6] * 2, dtype=torch.bool)
    assert torch.equal(mask, expected)


def test_rollout_batch_matches_sequential(predictor):
    context, state = _randn(1, 1, N, D), _randn(1, 1, 3, scale=0.2)
    actions = _randn(64, 3, 3, seed=3, scale=0.03)
    batched = predictor.rollout(context, state, actions)
    assert batched.shape == (64, 3, N, D)
    sequential = torch.cat([predictor.rollout(context, state, actions[i:i + 1]) for i in range(64)])
    torch.testing.assert_close(batched, sequential, atol=1e-5, rtol=1e-5)
    assert batched.std(0).mean() > 1e-3  # different plans give different predictions


def _teacher_forced_rollout(predictor, feats, states, actions):
    """Reference: re-run the full teacher-forced model on the growing sequence at every step."""
    batch, horizon = actions.shape[:2]
    feats, states = feats.expand(batch, -1, -1, -1), states.expand(batch, -1, -1)
    acts = context_actions(predictor.config, states)
    outs = []
    with torch.no_grad():
        for h in range(horizon):
            acts = torch.cat([acts, actions[:, h:h + 1]], dim=1)
            pred = F.layer_norm(predictor(feats, acts, states)[:, -1], (D,), eps=1e-5)
            outs.append(pred)
            feats = torch.cat([feats, pred[:, None]], dim=1)
            states = torch.cat([states, states[:, -1:] + actions[:, h:h + 1]], dim=1)
    return torch.stack(outs, dim=1)


@pytest.mark.parametrize("context_frames", [1, 3])
def test_cached_rollout_matches_teacher_forcing(either_predictor, context_frames):
    predictor = either_predictor
    feats, states = _randn(1, context_frames, N, D), _randn(1, context_frames, 3, seed=4, scale=0.2)
    actions = _randn(5, 3, 3, seed=5, scale=0.03)
    expected = _teacher_forced_rollout(predictor, feats, states, actions)
    torch.testing.assert_close(predictor.rollout(feats, states, actions), expected, atol=2e-5, rtol=1e-4)
    # a per-sample (non-broadcast) context gives the same result
    torch.testing.assert_close(predictor.rollout(feats.expand(5, -1, -1, -1), states.expand(5, -1, -1), actions),
                               expected, atol=2e-5, rtol=1e-4)


def test_rollout_state_update_modes(predictor):
    feats, state = _randn(1, 1, N, D), torch.zeros(1, 1, 3)
    actions = _randn(2, 2, 3, seed=6, scale=0.05)
    add = predictor.rollout(feats, state, actions)
    # "add": step 1 sees state + a_0, which equals a rollout started from that state with a_0 as context action
    none = load_predictor("tiny", state_update="none").rollout(feats, state, actions)
    torch.testing.assert_close(add[:, 0], none[:, 0])
    assert (add[:, 1] - none[:, 1]).abs().amax() > 1e-4
    first = predictor.rollout(feats, state, actions[:, :1])
    second_from_state = predictor.rollout(
        torch.cat([feats.expand(2, -1, -1, -1), first], dim=1),
        torch.cat([state.expand(2, -1, -1), state + actions[:, :1]], dim=1), actions[:, 1:],
        context_actions=actions[:, :1])
    torch.testing.assert_close(add[:, 1], second_from_state[:, 0], atol=2e-5, rtol=1e-4)


def test_action_normalisation_uses_the_action_space():
    base = load_predictor("tiny")
    space = base.config.action_space
    scaled = load_predictor("tiny", action_space=ActionSpace(space.names, space.units, space.low, space.high,
                                                             (0.01, 0.0, 0.0), (2.0, 2.0, 2.0)))
    feats, state, actions = _randn(1, 1, N, D), torch.zeros(1, 1, 3), _randn(4, 1, 3, seed=7)
    physical = actions * 2.0 + torch.tensor([0.01, 0.0, 0.0])
    torch.testing.assert_close(scaled.rollout(feats, state, physical), base.rollout(feats, state, actions),
                               atol=1e-5, rtol=1e-5)


def test_rollout_in_bfloat16_matches_fp32(predictor):
    half = load_predictor("tiny").to(torch.bfloat16)
    feats, state, actions = _randn(1, 1, N, D), torch.zeros(1, 1, 3), _randn(8, 2, 3, seed=8, scale=0.03)
    out = half.rollout(feats, state, actions)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), predictor.rollout(feats, state, actions), atol=0.15, rtol=0.05)


def test_max_horizon_is_enforced(predictor):
    feats, state = _randn(1, 1, N, D), torch.zeros(1, 1, 3)
    assert predictor.rollout(feats, state, torch.zeros(1, predictor.max_horizon, 3)).shape[1] == 8
    with pytest.raises(InputError, match="max_steps=8"):
        predictor.rollout(feats, state, torch.zeros(1, predictor.max_horizon + 1, 3))
    with pytest.raises(InputError, match="exceed the predictor's max_steps=8"):
        predictor(_randn(1, 9, N, D), torch.zeros(1, 9, 3), torch.zeros(1, 9, 3))


@pytest.mark.parametrize("which, shape, message", [
    ("actions", (4, 2, 5), "actions has last dim 5, the predictor expects 3"),
    ("states", (1, 1, 7), "states has last dim 7, the predictor expects 3"),
    ("features", (1, 1, N, 32), "features has last dim 32, the predictor expects 64"),
    ("features", (1, 1, 16, D), "16 tokens per frame, the predictor expects 64"),
    ("states", (2, 1, 3), "context batch 2 must be 1 or match"),
])
def test_rollout_shape_errors(predictor, which, shape, message):
    args = {"features": torch.zeros(1, 1, N, D), "states": torch.zeros(1, 1, 3), "actions": torch.zeros(4, 2, 3)}
    args[which] = torch.zeros(*shape)
    if which == "states" and shape[0] == 2:
        args["features"] = torch.zeros(2, 1, N, D)
    with pytest.raises(InputError, match=message):
        predictor.rollout(args["features"], args["states"], args["actions"])


@pytest.mark.parametrize("which", ["features", "states", "actions"])
def test_nan_inputs_raise(predictor, which):
    args = {"features": torch.zeros(1, 1, N, D), "states": torch.zeros(1, 1, 3), "actions": torch.zeros(4, 2, 3)}
    args[which].view(-1)[0] = float("nan")
    with pytest.raises(InputError, match=f"{which} contains NaN or Inf"):
        predictor.rollout(args["features"], args["states"], args["actions"])
    with pytest.raises(InputError, match="disagree on"):
        predictor(torch.zeros(2, 2, N, D), torch.zeros(2, 3, 3), torch.zeros(2, 2, 3))


def test_unknown_predictor_preset():
    with pytest.raises(ConfigError, match="unknown preset or model source 'ac_vit_x'"):
        load_predictor("ac_vit_x")


def test_chunked_rollout_matches_unchunked():
    chunked = load_predictor("tiny")
    chunked.rollout_chunk_size = 3
    feats, states = _randn(1, 2, N, D), _randn(1, 2, 3, seed=9, scale=0.2)
    actions = _randn(8, 2, 3, seed=10, scale=0.03)
    expected = load_predictor("tiny").rollout(feats, states, actions)
    torch.testing.assert_close(chunked.rollout(feats, states, actions), expected, atol=1e-5, rtol=1e-5)
    per_sample = chunked.rollout(feats.expand(8, -1, -1, -1), states.expand(8, -1, -1), actions)
    torch.testing.assert_close(per_sample, expected, atol=1e-5, rtol=1e-5)


def test_teacher_forced_forward_trains():
    model = load_predictor("tiny").train()
    feats, acts, states = _randn(2, 3, N, D), _randn(2, 3, 3, seed=11), _randn(2, 3, 3, seed=12)
    loss = (model(feats[:, :-1], acts[:, :-1], states[:, :-1]) - feats[:, 1:]).abs().mean()
    loss.backward()
    grads = {name: p.grad for name, p in model.named_parameters()}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
    assert grads["action_encoder.weight"].abs().sum() > 0 and grads["predictor_embed.weight"].abs().sum() > 0


@pytest.mark.parametrize("context_frames, horizon", [(1, 1), (1, 3), (3, 1), (3, 2)])
def test_prepared_context_matches_rollout(either_predictor, context_frames, horizon):
    predictor = either_predictor
    feats, states = _randn(1, context_frames, N, D), _randn(1, context_frames, 3, seed=13, scale=0.2)
    context_actions = _randn(1, context_frames - 1, 3, seed=14, scale=0.03)
    prepared = predictor.prepare_context(feats, states, context_actions)
    for seed in (15, 16):  # one preparation serves many batches
        actions = _randn(9, horizon, 3, seed=seed, scale=0.03)
        expected = predictor.rollout(feats, states, actions, context_actions)
        torch.testing.assert_close(prepared.rollout(actions), expected, atol=1e-5, rtol=1e-5)
    assert prepared.rollout(actions[:1]).shape == (1, horizon, N, D)


def test_prepared_context_chunks_errors_and_bfloat16(predictor):
    feats, state = _randn(1, 1, N, D), _randn(1, 1, 3, seed=17, scale=0.2)
    actions = _randn(70, 2, 3, seed=18, scale=0.03)
    expected = predictor.rollout(feats, state, actions)
    chunked = load_predictor("tiny")
    chunked.rollout_chunk_size = 16
    prepared = chunked.prepare_context(feats, state)
    assert prepared.preferred_batch == 16
    torch.testing.assert_close(prepared.rollout(actions), expected, atol=1e-5, rtol=1e-5)
    with pytest.raises(InputError, match="shared context"):
        predictor.prepare_context(feats.expand(2, -1, -1, -1), state.expand(2, -1, -1))
    with pytest.raises(InputError, match="actions has last dim 5"):
        prepared.rollout(torch.zeros(4, 1, 5))
    with pytest.raises(InputError, match="max_steps=8"):
        prepared.rollout(torch.zeros(4, 9, 3))
    half = load_predictor("tiny").to(torch.bfloat16)
    out = half.prepare_context(feats, state).rollout(actions[:8])
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), expected[:8], atol=0.15, rtol=0.05)


def test_single_threaded_cpu_rollouts_run_in_cache_sized_chunks_by_default(predictor):
    cfg = predictor.config
    assert predictor.rollout_chunk_size is None and torch.get_num_threads() == 1  # module fixture
    per_sequence = (2 + cfg.tokens_per_frame) * max(cfg.mlp_hidden, 3 * cfg.width)
    prepared = predictor.prepare_context(_randn(1, 1, N, D), torch.zeros(1, 1, 3))
    assert prepared.preferred_batch == (1 << 20) // per_sequence == 62
    torch.set_num_threads(2)
    try:
        assert prepared.preferred_batch is None  # whole batches with several threads
    finally:
        torch.set_num_threads(1)


def test_rollout_before_training_leaves_forward_differentiable():
    model = load_predictor("tiny")
    feats, states = _randn(1, 2, N, D), _randn(1, 2, 3, seed=19)
    model.rollout(feats, states, torch.zeros(2, 1, 3))  # caches position tables inside inference mode
    model.train()
    model(feats[:, :1], torch.zeros(1, 1, 3), states[:, :1]).sum().backward()  # same table layout
    assert model.predictor_embed.weight.grad is not None
