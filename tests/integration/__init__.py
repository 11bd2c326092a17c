"""ocirt under real managers: podman, containerd and Docker start containers through it."""
