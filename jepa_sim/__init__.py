"""Built-in MuJoCo simulation, ROS-free: the 3-joint arm (``arm_sim``) and the push scene (``push``); its ROS 2
adapter is ``jepa_ros.nodes.sim_node``."""
