"""Default topic, service and action names of the stack: the one place they are written (``../shared/ARCHITECTURE.md``
lists them). Nodes take them as parameter defaults and remap as usual; clients, recordings and tests import them."""

# Camera and robot state (sensors and the arm driver).
CAMERA = "/camera/image_raw"
CAMERA_INFO = "/camera/camera_info"
EE_POSE = "/ee_pose"
JOINT_STATES = "/joint_states"
#: The object's pose in the sim (evaluation and recording only, never a planner input).
OBJECT_POSE = "/object_pose"

# The jepa pipeline.
EMBEDDING = "/jepa/embedding"
GOAL_IMAGE = "/jepa/goal_image"
GOAL_EMBEDDING = "/jepa/goal_embedding"
PLAN = "/jepa/plan"
PREDICTION = "/jepa/prediction"
PREDICT_SERVICE = "/jepa/predict"
REACH_GOAL_ACTION = "/jepa/reach_goal"
ESTOP = "/jepa/estop"
# What the planner expects (visualisation): the chosen plan's decoded predicted frames as one picture strip, and
# its planned end-effector path as nav_msgs/Path and visualization_msgs/MarkerArray.
PREDICTION_IMAGE = "/jepa/prediction_image"
PLANNED_PATH = "/jepa/planned_path"
PLANNED_PATH_MARKERS = "/jepa/planned_path_markers"

# Actuator outputs: MoveIt Servo's twist input and a ros2_control joint trajectory controller.
SERVO_NODE = "/servo_node"
#: Servo's twist input relative to its node: <servo_node>/delta_twist_cmds for the controller's `servo_node`.
SERVO_TWIST_INPUT = "delta_twist_cmds"
SERVO_TWIST = f"{SERVO_NODE}/{SERVO_TWIST_INPUT}"
JOINT_TRAJECTORY = "/joint_trajectory_controller/joint_trajectory"
#: The controller's gripper command, closedness in [0, 1] (1 = closed) as std_msgs/Float64 (the sim's interface).
GRIPPER_COMMAND = "/jepa/gripper_command"
#: A ros2_control gripper action controller's control_msgs/action/GripperCommand (<controller>/gripper_cmd).
GRIPPER_ACTION = "/gripper_controller/gripper_cmd"

DIAGNOSTICS = "/diagnostics"
CLOCK = "/clock"
