"""A local AWS for tests, benchmarks and the demo: moto's S3 server on 127.0.0.1, and a proxy
that adds latency and faults in front of it. Never deployed."""
