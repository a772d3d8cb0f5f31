"""Old name of the node driver's image helper, kept only for `jepa_ros/soak/hostile.py`'s import (remove once it
imports `jepa_ros.episodes.node_driver`)."""
from jepa_ros.episodes.node_driver import image_to_array

__all__ = ["image_to_array"]
