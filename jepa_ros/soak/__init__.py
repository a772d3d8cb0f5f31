"""`jepa soak`: the sim stack under random goals, peer kills, restarts, e-stops and hostile input; every command
recorded and audited."""
