"""jepa_ros: the one ROS 2 layer. ``nodes/`` (each node turns messages into calls on a library object and results
back into messages), ``episodes/`` (`jepa eval`, `jepa demo`, the node driver), ``launch_runner/`` (launch files
without a ROS install), ``soak/`` (`jepa soak`), the `jepa` CLI, message validation and ROS helpers."""
