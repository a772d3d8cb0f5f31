"""The shared validation helper rejects malformed jepa_msgs fields with an error that names the field."""
import numpy as np
import pytest
from jepa_msgs.msg import Embedding, Plan

from jepa_ros.msg_validation import (MessageValidationError, embedding_array, embedding_state, fill_embedding,
                                     fill_plan, plan_actions)

# message objects only, no DDS
pytestmark = pytest.mark.unit


def test_embedding_roundtrip_keeps_shape_and_values():
    features = np.random.default_rng(0).standard_normal((4, 6)).astype(np.float32)
    msg = fill_embedding(Embedding(), features, model_id="m", state_names=["x", "y"], state=[0.5, -1.0])
    np.testing.assert_array_equal(embedding_array(msg), features)
    np.testing.assert_array_equal(embedding_state(msg), [0.5, -1.0])


@pytest.mark.parametrize("shape, n, field", [([4, 6], 23, "Embedding.data"), ([], 0, "Embedding.shape"),
                                             ([4, 0], 0, "Embedding.shape")])
def test_embedding_shape_not_matching_data_names_the_field(shape, n, field):
    msg = Embedding(shape=shape, data=np.zeros(n, dtype=np.float32))
    with pytest.raises(MessageValidationError) as error:
        embedding_array(msg)
    assert error.value.field == field and field in str(error.value)


def test_embedding_nan_and_state_mismatch_are_rejected():
    msg = fill_embedding(Embedding(), np.array([[1.0, np.nan]], dtype=np.float32))
    with pytest.raises(MessageValidationError, match="Embedding.data: contains NaN"):
        embedding_array(msg)
    msg = Embedding(state_names=["x", "y"], state=[1.0])
    with pytest.raises(MessageValidationError, match="Embedding.state"):
        embedding_state(msg)


def test_plan_roundtrip_and_malformed_plans():
    actions = np.arange(6, dtype=np.float32).reshape(2, 3)
    msg = fill_plan(Plan(), actions, action_names=["dx", "dy", "dz"], action_units=["m"] * 3, energies=[1, 2])
    np.testing.assert_array_equal(plan_actions(msg), actions)
    msg.actions = np.zeros(5, dtype=np.float32)
    with pytest.raises(MessageValidationError, match=r"Plan.actions: has 5 values but horizon 2 x 3"):
        plan_actions(msg)
    msg = fill_plan(Plan(), actions, action_names=["dx", "dy", "dz"], action_units=["m"])
    with pytest.raises(MessageValidationError, match="Plan.action_units"):
        plan_actions(msg)
    msg = fill_plan(Plan(), actions, action_names=["dx", "dy", "dz"])
    msg.horizon = 0
    with pytest.raises(MessageValidationError, match="Plan.horizon"):
        plan_actions(msg)
    with pytest.raises(MessageValidationError, match="Plan.actions: shape"):
        fill_plan(Plan(), actions, action_names=["dx"])
