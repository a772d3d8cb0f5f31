"""Built-in MuJoCo simulation, ROS-free: the 3-joint arm (``arm_sim``) and the push scene (``push``); its ROS 2
adapter is ``jepa_ros.nodes.sim_node``. A Franka Panda with its gripper for pick-and-place (``franka_sim``, model from
gymnasium-robotics) and its scripted play policy (``franka_script``)."""
