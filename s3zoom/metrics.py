"""CloudWatch metrics of the function, in the embedded metric format: printed among the invocation's logs,
where CloudWatch turns them into metrics, with no API call and no extra latency.

Each handled object adds to an invocation's tally; :func:`publish` hands the tally to Powertools'
``Metrics`` at the end of the invocation (imported then, so a cold start that converts nothing does
not pay for it). In namespace ``LambdaZoom``, dimension ``service=lambdazoom``: ``ImagesConverted``,
``ImagesFailed``, ``ImagesRemoved`` (counts), ``Megapixels``, ``Tiles`` and ``ConversionSeconds`` (sums,
one data point per image); and the receipt of every handled object, whatever became of it (receipt.py):
``S3Requests``, ``GBSeconds`` and ``CostUSD``. A cold start whose streaming decoder fails its self-test
counts ``StreamingSelfTestFailed`` (the kinds that failed), published with its first invocation's.
"""

from __future__ import annotations

from typing import Any

NAMESPACE = "LambdaZoom"
SERVICE = "lambdazoom"

_pending: list[tuple[str, str, float]] = []  # (name, unit, value) of this invocation


def record(action: str, report: dict[str, Any]) -> None:
    """Count one object's outcome and what it cost; a conversion adds its size, tiles and seconds."""
    if action == "converted":
        _pending.append(("ImagesConverted", "Count", 1))
        _pending.append(("Megapixels", "Count", report.get("pixels", 0) / 1e6))
        _pending.append(("Tiles", "Count", report.get("tiles", 0)))
        _pending.append(("ConversionSeconds", "Seconds", sum(report.get("seconds", {}).values())))
    elif action == "removed":
        _pending.append(("ImagesRemoved", "Count", 1))
    elif action == "failed":
        _pending.append(("ImagesFailed", "Count", 1))
    _pending.append(("S3Requests", "Count", sum(report["requests"].values())))
    _pending.append(("GBSeconds", "None", report["gb_seconds"]))
    _pending.append(("CostUSD", "None", report["cost_usd"]))


def count(name: str, value: float = 1) -> None:
    """Add ``value`` to the count ``name`` of this invocation (of the first one, if counted at a cold start)."""
    _pending.append((name, "Count", value))


def publish() -> None:
    """Print this invocation's metrics as one embedded-metric-format line, and start a new tally."""
    if not _pending:
        return
    from aws_lambda_powertools import Metrics

    metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
    for name, unit, value in _pending:
        metrics.add_metric(name=name, unit=unit, value=value)
    _pending.clear()
    metrics.flush_metrics()
