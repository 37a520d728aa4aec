"""Where reports come from: the Kubernetes API (list+watch) or local files."""
