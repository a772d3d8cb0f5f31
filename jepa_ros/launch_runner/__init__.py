"""The launch-file runner used without a ROS install: the XML reader, its substitutions, and the stack of node
processes it starts."""
