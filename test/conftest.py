"""Test-session set-up: an isolated DDS domain on loopback and headless rendering."""
import os
import random

# Each pytest session gets its own ROS domain so parallel runs (and other sessions) never cross-talk.
os.environ.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(1, 200)))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("MUJOCO_GL", "osmesa")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
