"""The S3 side of LambdaZoom: events in, pyramids written to and removed from the zoom bucket."""
