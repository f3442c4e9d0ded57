"""kubetrade: a Kubernetes-native crypto trading bot."""

__version__ = "0.1.0"
