"""Frame names of the built-in simulation and the defaults of the nodes: the one place they are written. A real arm
sets its own through the nodes' ``frame_id`` parameters."""

#: The arm's base frame: /ee_pose, the workspace box, twists and the object's pose are expressed in it.
BASE = "base_link"
#: The sim camera's optical frame (the frame_id of its images).
SIM_CAMERA_OPTICAL = "sim_camera_optical_frame"
#: A real camera's optical frame: the frame of the made-up camera messages of the soak's hostile inputs and of the
#: tests (any frame works there: the perception node copies it into the embedding, the planner into the plan).
CAMERA_OPTICAL = "camera_optical_frame"
