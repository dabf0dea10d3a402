"""A fleet of replicas behind nginx: control (state, supervisor, rollout), proxy, oip_edge, cli."""
