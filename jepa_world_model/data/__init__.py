"""Recorded data: the MCAP episode writer, reading episodes into clips, ROS image encodings as numpy, and the
feature cache of training."""
