"""Glue of the jepa_ros stack: the `jepa` CLI, message validation, ROS helpers, demo and evaluation."""
