"""Real-component helpers shared by tests: registry server, fake Kubernetes API, signing, Prometheus."""
