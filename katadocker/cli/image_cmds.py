"""Image verbs: pull, images, rmi, tag, inspect, history, prune, save, load, login, logout."""
