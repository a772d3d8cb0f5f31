"""jepa_control: the ROS-free arm controller (plans -> safe actuator commands), its safety filter, MoveIt Servo
start-up and the audit of recorded command streams. Needs neither torch nor a planner."""
