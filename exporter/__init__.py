"""trustwatch: run only trusted container images on Kubernetes, and see it happen."""

__version__ = "0.1.0"
