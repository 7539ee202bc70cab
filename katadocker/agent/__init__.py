"""The host side of the agent protocol (frames over virtio-serial) and its client."""
