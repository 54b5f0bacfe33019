"""NVIDIA GPU metrics from DCGM, read through Prometheus (``x_stats_dcgm_exporter``).

The setting is a Prometheus instant-query URL, as is common where a
Prometheus server gathers the DCGM exporters of a cluster::

    http://prometheus:9090/api/v1/query?query=DCGM_FI_DEV_GPU_UTIL{node="l1337"}

(``query`` may be given more than once; each is asked in turn; braces, quotes
and spaces may be written unencoded). A URL ending in ``/metrics`` is read as a
DCGM exporter's own exposition instead. ``x_stats_open_metrics_http_headers``
are sent with every request.

Each sample needs the GPU's index, from its ``gpu`` label (or ``device``, less
an ``nvidia`` prefix); samples without one are skipped. DCGM fields map to the
GPU keys of the System Metrics Reference; other fields keep their own name::

    DCGM_FI_DEV_GPU_UTIL (%)             gpu.{i}.gpu
    DCGM_FI_DEV_MEM_COPY_UTIL (%)        gpu.{i}.memory
    DCGM_FI_DEV_FB_USED (MiB)            gpu.{i}.memoryAllocatedBytes (bytes)
    FB_USED / FB_TOTAL (or USED+FREE+RESERVED)   gpu.{i}.memoryAllocated (%)
    DCGM_FI_DEV_GPU_TEMP (C)             gpu.{i}.temp
    DCGM_FI_DEV_POWER_USAGE (W)          gpu.{i}.powerWatts
    POWER_USAGE / ENFORCED_POWER_LIMIT (or POWER_MGMT_LIMIT)   gpu.{i}.powerPercent
    DCGM_FI_DEV_SM_CLOCK (MHz)           gpu.{i}.smClock
    DCGM_FI_DEV_MEM_CLOCK (MHz)          gpu.{i}.memoryClock
    DCGM_FI_DEV_ENC_UTIL (%)             gpu.{i}.encoderUtilization
    DCGM_FI_DEV_ECC_SBE_VOL_TOTAL        gpu.{i}.correctedMemoryErrors
    DCGM_FI_DEV_ECC_DBE_VOL_TOTAL        gpu.{i}.unCorrectedMemoryErrors
    anything else, e.g. DCGM_FI_PROF_SM_ACTIVE   gpu.{i}.DCGM_FI_PROF_SM_ACTIVE

The GPUs are usually another machine's, and one query may span several
machines, so when a sample names its host (label ``node``, else ``hostname``,
else ``Hostname`` as the DCGM exporter writes it) the key ends in
``/l:{host}``, as W&B writes it: ``gpu.0.gpu/l:node-7``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from wbtool.stats.base import Collector, Reading, Target
from wbtool.stats.openmetrics import (
    TEXT_ACCEPT,
    TIMEOUT,
    Scraper,
    check_url,
    fetch,
    fetch_errors,
    http_headers,
)

MIB = 1 << 20
# DCGM field → (reference key, factor to the reference's unit)
FIELDS: dict[str, tuple[str, int]] = {
    "DCGM_FI_DEV_GPU_UTIL": ("gpu", 1),
    "DCGM_FI_DEV_MEM_COPY_UTIL": ("memory", 1),
    "DCGM_FI_DEV_FB_USED": ("memoryAllocatedBytes", MIB),
    "DCGM_FI_DEV_GPU_TEMP": ("temp", 1),
    "DCGM_FI_DEV_POWER_USAGE": ("powerWatts", 1),
    "DCGM_FI_DEV_SM_CLOCK": ("smClock", 1),
    "DCGM_FI_DEV_MEM_CLOCK": ("memoryClock", 1),
    "DCGM_FI_DEV_ENC_UTIL": ("encoderUtilization", 1),
    "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL": ("correctedMemoryErrors", 1),
    "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL": ("unCorrectedMemoryErrors", 1),
}
HOST_LABELS = ("node", "hostname", "Hostname")
Sample = tuple[str, Mapping[str, str], float]


def vector_samples(payload: Any) -> list[Sample]:
    """The samples of a Prometheus ``/api/v1/query`` answer (an instant vector)."""
    if not isinstance(payload, Mapping) or payload.get("status") != "success":
        error = payload.get("error") if isinstance(payload, Mapping) else None
        raise ValueError(f"the query failed: {error or payload!r}")
    data = payload.get("data") or {}
    if not isinstance(data, Mapping) or data.get("resultType") != "vector":
        kind = data.get("resultType") if isinstance(data, Mapping) else data
        raise ValueError(f"expected an instant vector, got {kind!r}")
    result = data.get("result") or []
    if not isinstance(result, list):
        raise ValueError(f"expected a list of samples, got {result!r}")
    out: list[Sample] = []
    for item in result:
        metric = (item.get("metric") or {}) if isinstance(item, Mapping) else None
        if not isinstance(metric, Mapping):
            continue
        labels = {str(k): v for k, v in metric.items() if isinstance(v, str)}
        name = labels.pop("__name__", "")
        try:
            value = float(item["value"][1])
        except (KeyError, IndexError, TypeError, ValueError):
            continue
        out.append((name, labels, value))
    return out


def gpu_readings(samples: Iterable[Sample]) -> Reading:
    """``gpu.{i}.*`` readings from DCGM samples (see the module's docstring)."""
    groups: dict[tuple[str, str], dict[str, float]] = {}
    for name, labels, value in samples:
        index = labels.get("gpu") or labels.get("device", "").removeprefix("nvidia")
        if not name or not index:
            continue
        host = next((labels[k] for k in HOST_LABELS if labels.get(k)), "")
        groups.setdefault((index, f"/l:{host}" if host else ""), {})[name] = value
    out: Reading = {}
    for (index, suffix), fields in groups.items():
        for name, value in fields.items():
            key, factor = FIELDS.get(name, (name, 1))
            out[f"gpu.{index}.{key}{suffix}"] = value * factor
        used = fields.get("DCGM_FI_DEV_FB_USED")
        total = fields.get("DCGM_FI_DEV_FB_TOTAL")
        if used is not None and total is None and "DCGM_FI_DEV_FB_FREE" in fields:
            total = used + fields["DCGM_FI_DEV_FB_FREE"] + fields.get(
                "DCGM_FI_DEV_FB_RESERVED", 0.0)
        if used is not None and total:
            out[f"gpu.{index}.memoryAllocated{suffix}"] = used / total * 100
        power = fields.get("DCGM_FI_DEV_POWER_USAGE")
        limit = fields.get("DCGM_FI_DEV_ENFORCED_POWER_LIMIT") or fields.get(
            "DCGM_FI_DEV_POWER_MGMT_LIMIT")
        if power is not None and limit:
            out[f"gpu.{index}.powerPercent{suffix}"] = power / limit * 100
    return out


def query_urls(url: str) -> list[str]:
    """One URL per ``query`` parameter of ``url``, properly encoded."""
    from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

    parts = urlsplit(check_url(url, "x_stats_dcgm_exporter"))
    if parts.path.endswith("/metrics"):
        return [url]
    params = parse_qsl(parts.query, keep_blank_values=True)
    queries = [value for key, value in params if key == "query"]
    if not queries:
        raise ValueError(f"x_stats_dcgm_exporter: {url!r} has no query= parameter")
    others = [(key, value) for key, value in params if key != "query"]
    path = parts.path if parts.path not in ("", "/") else "/api/v1/query"
    return [urlunsplit((parts.scheme, parts.netloc, path,
                        urlencode([*others, ("query", q)], quote_via=quote), ""))
            for q in queries]


class DCGMExporter(Scraper):
    """GPU readings from the DCGM queries of ``x_stats_dcgm_exporter``."""

    name = "dcgm_exporter"

    def __init__(self, url: str, *, headers: Mapping[str, str],
                 timeout: float = TIMEOUT) -> None:
        from urllib.parse import urlsplit

        self.url = url
        self.urls = query_urls(url)
        self.exposition = urlsplit(url).path.endswith("/metrics")
        self.headers = dict(headers)
        self.timeout = timeout

    def sample(self) -> Reading:
        samples: list[Sample] = []
        try:
            for url in self.urls:
                if self.exposition:
                    from wbtool.stats.promtext import parse

                    text = fetch(url, self.headers, accept=TEXT_ACCEPT, timeout=self.timeout)
                    samples += [(n, dict(labels), v) for n, labels, v in parse(text)]
                else:
                    text = fetch(url, self.headers, accept="application/json",
                                 timeout=self.timeout)
                    samples += vector_samples(json.loads(text))
        except fetch_errors() as e:  # json.JSONDecodeError is a ValueError
            return self.failed(e, f"DCGM exporter query {self.url}")
        self.failures = 0
        return gpu_readings(samples)


def probe(settings: Mapping[str, Any], target: Target) -> Collector | None:
    url = settings.get("x_stats_dcgm_exporter")
    if not url:
        return None
    return DCGMExporter(url, headers=http_headers(settings))
