"""jepa_common: what every layer shares and nothing of ours is imported by: settings fields and their CLI, the one
package-data finder, and the shared names (topics, frames, episode outcomes). ROS-free and torch-free."""
