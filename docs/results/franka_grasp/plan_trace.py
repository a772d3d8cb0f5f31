"""Step-by-step trace of the planner near the Franka pregrasp pose (offline, seed 0, 12 steps per episode): per step
the hand's distance to the pose, the gripper, how far the cube has been pushed, the observed energy, the chosen move
and its predicted energy, and the predicted energy of doing nothing (the zero action, from the same frame). A plan
whose predicted energy is above doing nothing's is a search that missed holding still.

Run from the repository root: ``.venv/bin/python docs/results/franka_grasp/plan_trace.py MODEL RADIUS [EPISODES]``
(MODEL: a trained 7-D model directory; RADIUS: start distance from the pose in m, as pregrasp_near.py; EPISODES:
default 4; environment SETTINGS: planner settings over the task's, as JSON, for example
``'{"include_neutral": false}'``). Prints the trace and the count of such plans.
"""
from __future__ import annotations

import json
import os
import sys
import time

import numpy as np
import torch
from pregrasp_near import PregraspFromNear, pregrasp  # the sibling script (its folder is on sys.path when run)

from jepa_episodes.offline import STEP_NS, OfflineDriver, clipped, load_models, place_franka_start
from jepa_episodes.tasks.grasp import franka_start
from jepa_planner.energy import l1_energy
from jepa_planner.mpc import PLAN, Observation
from jepa_planner.mpc.loop import context_inputs

STEPS = 12


def main(model: str, radius: float, count: int) -> None:
    task = PregraspFromNear(radius, STEPS)
    encoder, predictor = load_models(model, model)
    settings = task.planner_settings(**json.loads(os.environ.get("SETTINGS", "{}")))
    driver = OfflineDriver(task, encoder, predictor, settings)
    loop, models, sim = driver.loop, driver.models, driver.sim
    missed = plans = 0
    for episode in task.sample(10, 0)[:count]:
        place_franka_start(sim, franka_start(episode))
        pose, cube = np.asarray(pregrasp(episode).ee), sim.cube_position()
        goal = loop.goal_tensor(driver.features(driver.goal_image(pregrasp(episode))))
        loop.begin_reach([goal], time.monotonic(), budgets=[STEPS], tolerance=None)
        print("episode")
        while True:
            driver.now_ns += STEP_NS
            state = sim.state()
            observation = Observation(driver.features(sim.render()), driver.now_ns, state=state,
                                      state_names=models.state_names, model_id=models.model_id)
            loop.inputs.offer(observation, driver.now_ns)
            observed = loop.energy(observation, goal)
            decision = loop.step(observation, driver.now_ns, time.monotonic())
            if decision.kind != PLAN:
                break
            action = decision.result.actions[0].double().numpy()
            with torch.inference_mode():
                context, context_state = context_inputs(models, observation)
                still = torch.zeros(1, loop.planner.config.horizon, action.size, dtype=context.dtype)
                predicted = loop.planner.model.rollout(context, context_state, still)
                still_energy = float(l1_energy(predicted[:, -1], goal)[0])
            plans += 1
            missed += decision.result.energy > still_energy
            print(f"distance {np.linalg.norm(state[:3] - pose) * 100:5.1f} cm, gripper {state[6]:.2f}, cube pushed "
                  f"{np.linalg.norm(sim.cube_position() - cube) * 100:4.1f} cm | observed {observed:.4f} | move "
                  f"{np.round(action[:3] * 100, 1).tolist()} cm, dgripper {action[6]:+.2f}, predicted "
                  f"{decision.result.energy:.4f}; doing nothing predicted {still_energy:.4f}")
            sim.apply_action(np.r_[clipped(sim.ee_position(), action[:3], driver.ee_box), action[3:]])
    print(f"plans whose predicted energy is above doing nothing's: {missed}/{plans}")


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 4)
