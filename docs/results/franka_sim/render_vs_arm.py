import time
from jepa_sim.arm_sim import ArmSim
from jepa_sim.franka_sim import FrankaSim
sims = {"arm 64 px (push)": ArmSim(image_size=64, task="push"), "franka 128 px": FrankaSim(image_size=128),
        "franka 64 px": FrankaSim(image_size=64)}
res = {k: [] for k in sims}
for k, s in sims.items(): s.render()
for rep in range(30):
    for k, s in sims.items():
        t = time.perf_counter(); s.render(); res[k].append((time.perf_counter() - t) * 1e3)
base = sorted(res["arm 64 px (push)"])[15]
for k, v in res.items():
    m = sorted(v)[15]; print(f"{k}: median {m:.1f} ms, {m / base:.2f}x the arm")
