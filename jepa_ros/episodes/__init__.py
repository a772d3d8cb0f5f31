"""Episodes through the nodes: `jepa eval`, `jepa demo` and the rclpy clients that drive a running stack."""
