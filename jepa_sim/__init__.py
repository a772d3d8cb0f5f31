"""Built-in MuJoCo simulation of a 3-joint arm (``arm_sim``, ROS-free) and its ROS 2 adapter (``sim_node``)."""
