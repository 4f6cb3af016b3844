"""The one-command demo: a local S3, the real handler on the events S3 sends, an OpenSeadragon viewer.

``python -m lambdazoom demo [IMAGE ...]`` (``make demo`` sets everything up first). Nothing leaves
127.0.0.1: the buckets live in moto's server, the viewer reads the pyramids straight from it, as a
browser reads them from a public zoom bucket on AWS.
"""

from demo.run import run_demo

__all__ = ["run_demo"]
