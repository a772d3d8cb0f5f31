"""jepa_ros: an ament_python ROS 2 package (also pip-installable without a ROS install)."""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "jepa_ros"
#: The ROS-free libraries, bottom layer first (test/common/test_layering.py holds the rules between them).
LIBRARIES = ("jepa_common", "jepa_sim", "jepa_world_model", "jepa_planner", "jepa_control", "jepa_episodes")

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=[f"{name}{suffix}" for name in LIBRARIES + (PACKAGE,) for suffix in ("", ".*")]),
    package_data={"jepa_sim": ["*.xml"], "jepa_world_model": ["shipped_models/*/*", "shipped_models/*/decoder/*"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.xml")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.rviz") + glob("config/*.json")),
    ],
    install_requires=["setuptools"],
    zip_safe=False,
    maintainer="jepa_ros maintainers",
    maintainer_email="maintainers@jepa-ros.org",
    description="V-JEPA 2-style world model as a goal-image robot controller for ROS 2.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "jepa = jepa_ros.cli:main",
            "perception_node = jepa_ros.nodes.perception_node:main",
            "recorder_node = jepa_ros.nodes.recorder_node:main",
            "planner_node = jepa_ros.nodes.planner_node:main",
            "controller_node = jepa_ros.nodes.controller_node:main",
            "sim_node = jepa_ros.nodes.sim_node:main",
        ],
    },
)
