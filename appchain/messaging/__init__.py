"""The messaging swarm layer: Session message storage on service nodes, following the chain."""
