"""jepa_episodes: tasks on the built-in simulation (reach, push), the episode runner that drives them offline or
through the nodes, the planner benchmark and the scripted recordings of sim episodes."""
