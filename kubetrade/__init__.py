"""kubetrade: a Kubernetes-native crypto trading bot."""

from kubetrade import cancellation

__version__ = "0.1.0"

# before anything awaits: on Python 3.11 asyncio.wait_for can swallow a cancellation,
# and cancelling is how every kubetrade process stops its work (see the module)
cancellation.install()
