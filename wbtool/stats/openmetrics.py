"""Metrics scraped from OpenMetrics / Prometheus ``/metrics`` endpoints.

``x_stats_open_metrics_endpoints`` names the endpoints (``{name: url}``).
Every sample of an endpoint becomes one reading keyed::

    openmetrics.{endpoint}.{series}

where ``{series}`` is the metric name with its labels folded in the way PromQL
writes a series, labels sorted by name and values escaped as in the
exposition format (see :mod:`wbtool.stats.promtext`)::

    openmetrics.node.node_cpu_seconds_total{cpu="0",mode="idle"}
    openmetrics.app.request_latency_seconds_bucket{le="+Inf"}

Every sample is kept: gauges, counters, untyped samples, and the ``_bucket``,
``_sum`` and ``_count`` samples of histograms and summaries.

``x_stats_open_metrics_filters`` narrows them, in one of two forms:

- a sequence of patterns: a series is kept when any pattern is found in
  ``{endpoint}.{metric}`` (for example ``"node\\.node_load"``);
- a mapping ``{pattern: {label: value pattern}}``: a series is kept when a
  pattern is found in ``{endpoint}.{metric}`` and, for that entry, every
  named label is present and its value pattern is found in the label's value.

Patterns are Python regular expressions searched for anywhere in the text (as
W&B's Go ``regexp.MatchString`` does); anchor them with ``^`` and ``$`` to
match whole names. No filters, or an empty one, keeps everything.

``x_stats_open_metrics_http_headers`` are sent with every request (to these
endpoints and to ``x_stats_dcgm_exporter``), for example an
``Authorization`` header.

Each endpoint is a collector of its own (up to :data:`MAX_ENDPOINTS`, taken
in name order). Probing contacts no endpoint. A failed scrape gives no
readings that time; an endpoint that fails :data:`MAX_FAILURES` times in a
row stops with one warning while the other endpoints carry on.

The DCGM exporter source is in :mod:`wbtool.stats.dcgm`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from wbtool.stats.base import Collector, Reading, Target
from wbtool.stats.promtext import Labels, parse, series_key

TIMEOUT = 2.0  # seconds per request: the sampler thread waits on it
MAX_FAILURES = 3  # failed scrapes in a row before an endpoint stops
MAX_BYTES = 32 << 20  # a larger answer is refused
READ_BYTES = 1 << 20  # read at a time, the deadline checked between reads
MAX_ENDPOINTS = 32  # endpoints scraped, by name; more are warned about
TEXT_ACCEPT = "text/plain;version=0.0.4;q=1.0,*/*;q=0.1"


def fetch_errors() -> tuple[type[Exception], ...]:
    """What a failed request raises (http.client is imported on first need)."""
    import http.client

    return (OSError, ValueError, http.client.HTTPException)


def fetch(url: str, headers: Mapping[str, str], *, accept: str,
          timeout: float = TIMEOUT) -> str:
    """The body of ``GET url`` as text; raises for any status but 2xx, and when
    the body takes longer than ``timeout`` to come (the socket's timeout only
    bounds each read, which a server sending a byte at a time never reaches)."""
    import time
    import urllib.request

    from wbtool._version import __version__

    request = urllib.request.Request(
        url, headers={"Accept": accept, "User-Agent": f"wbtool/{__version__}", **headers})
    deadline = time.monotonic() + timeout
    with urllib.request.urlopen(request, timeout=timeout) as response:
        chunks: list[bytes] = []
        size = 0
        while size <= MAX_BYTES and (chunk := response.read1(READ_BYTES)):
            chunks.append(chunk)
            size += len(chunk)
            if time.monotonic() > deadline:
                raise TimeoutError(f"the answer took longer than {timeout:g}s to come")
        body = b"".join(chunks)
        charset = response.headers.get_content_charset() or "utf-8"
        missing = response.length  # bytes of the Content-Length that never came
    if len(body) > MAX_BYTES:
        raise ValueError(f"the answer is larger than {MAX_BYTES >> 20} MiB")
    if missing:  # cut short: its last line may be a number cut in two
        raise ConnectionError(f"the answer ended {missing} bytes short of its length")
    try:
        return str(body.decode(charset, errors="replace"))
    except LookupError:  # a charset no one knows: the exposition formats are UTF-8
        return body.decode("utf-8", errors="replace")


def check_url(url: Any, setting: str) -> str:
    from urllib.parse import urlsplit

    if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https") \
            or not urlsplit(url).netloc:
        raise ValueError(f"{setting}: {url!r} is not an http(s) URL")
    return url


def http_headers(settings: Mapping[str, Any]) -> dict[str, str]:
    headers = settings.get("x_stats_open_metrics_http_headers") or {}
    if not isinstance(headers, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()):
        raise ValueError("x_stats_open_metrics_http_headers: expected {name: value} strings")
    return dict(headers)


class Scraper:
    """Counts failed scrapes in a row; the last allowed one raises."""

    name = "scraper"
    failures = 0

    def failed(self, error: BaseException, where: str) -> Reading:
        self.failures += 1
        if self.failures >= MAX_FAILURES:
            raise ConnectionError(
                f"{where} failed {self.failures} times in a row, last: {error}") from error
        return {}

    def inventory(self) -> dict[str, Any]:
        return {}

    def close(self) -> None:
        pass


class Filters:
    """Which series of an endpoint are kept (see the module's docstring)."""

    def __init__(self, spec: Any) -> None:
        self.rules: list[tuple[re.Pattern[str], list[tuple[str, re.Pattern[str]]]]] = []
        if spec is None or spec == "":
            spec = ()
        if isinstance(spec, Mapping):
            for metric, labels in spec.items():
                if not isinstance(labels, Mapping):
                    raise ValueError("x_stats_open_metrics_filters: a mapping's values must "
                                     f"be {{label: pattern}} mappings, not {labels!r}")
                self.rules.append((_compile(metric),
                                   [(str(k), _compile(v)) for k, v in labels.items()]))
        elif isinstance(spec, (list, tuple)):
            self.rules = [(_compile(pattern), []) for pattern in spec]
        else:
            raise ValueError("x_stats_open_metrics_filters: expected a sequence of patterns "
                             f"or a {{pattern: {{label: pattern}}}} mapping, not {spec!r}")
        self._seen: dict[tuple[str, Labels], bool] = {}

    def keeps(self, endpoint: str, name: str, labels: Labels) -> bool:
        if not self.rules:
            return True
        decided = self._seen.get((name, labels))
        if decided is None:
            decided = self._decide(f"{endpoint}.{name}", dict(labels))
            if len(self._seen) >= 100_000:
                self._seen.clear()
            self._seen[(name, labels)] = decided
        return decided

    def _decide(self, full_name: str, labels: dict[str, str]) -> bool:
        for metric, label_rules in self.rules:
            if metric.search(full_name) and all(
                    key in labels and rule.search(labels[key]) for key, rule in label_rules):
                return True
        return False


def _compile(pattern: Any) -> re.Pattern[str]:
    if not isinstance(pattern, str):
        raise ValueError(f"x_stats_open_metrics_filters: {pattern!r} is not a pattern")
    try:
        return re.compile(pattern)
    except re.error as e:
        raise ValueError(f"x_stats_open_metrics_filters: bad pattern {pattern!r}: {e}") from e


class Endpoint(Scraper):
    """One OpenMetrics endpoint: ``sample()`` scrapes it once."""

    def __init__(self, endpoint: str, url: str, *, filters: Filters,
                 headers: Mapping[str, str], timeout: float = TIMEOUT) -> None:
        self.endpoint = endpoint
        self.name = f"openmetrics.{endpoint}"
        self.url = url
        self.filters = filters
        self.headers = dict(headers)
        self.timeout = timeout

    def sample(self) -> Reading:
        try:
            text = fetch(self.url, self.headers, accept=TEXT_ACCEPT, timeout=self.timeout)
        except fetch_errors() as e:
            return self.failed(e, f"OpenMetrics endpoint {self.endpoint!r} ({self.url})")
        self.failures = 0
        prefix = f"{self.name}."
        out: Reading = {}
        for name, labels, value in parse(text):
            if self.filters.keeps(self.endpoint, name, labels):
                out[prefix + series_key(name, labels)] = value
        return out


def endpoints(settings: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """The configured endpoints, sorted by name."""
    configured = settings.get("x_stats_open_metrics_endpoints") or {}
    if not isinstance(configured, Mapping):
        raise ValueError("x_stats_open_metrics_endpoints: expected a {name: url} mapping")
    return sorted((str(k), v) for k, v in configured.items())


def _endpoint_probe(slot: int) -> Callable[[Mapping[str, Any], Target], Collector | None]:
    """The probe for the ``slot``-th endpoint by name: one collector each, so
    the sampler stops a dead endpoint alone."""

    def probe(settings: Mapping[str, Any], target: Target) -> Collector | None:
        configured = endpoints(settings)
        if slot >= len(configured):
            return None
        name, url = configured[slot]
        if not name:
            raise ValueError("x_stats_open_metrics_endpoints: an endpoint needs a name")
        try:  # settings all endpoints share are reported once, by the first
            filters = Filters(settings.get("x_stats_open_metrics_filters"))
            headers = http_headers(settings)
        except ValueError:
            if slot == 0:
                raise
            return None
        return Endpoint(name, check_url(url, f"x_stats_open_metrics_endpoints[{name!r}]"),
                        filters=filters, headers=headers)

    probe.__name__ = probe.__qualname__ = f"probe_endpoint_{slot}"
    return probe


def probe_surplus(settings: Mapping[str, Any], target: Target) -> Collector | None:
    count = len(endpoints(settings))
    if count > MAX_ENDPOINTS:
        raise ValueError(f"only the first {MAX_ENDPOINTS} of {count} OpenMetrics endpoints "
                         "(by name) are scraped")
    return None


def probe_dcgm(settings: Mapping[str, Any], target: Target) -> Collector | None:
    if not settings.get("x_stats_dcgm_exporter"):
        return None
    from wbtool.stats.dcgm import probe

    return probe(settings, target)


PROBES = (*(_endpoint_probe(slot) for slot in range(MAX_ENDPOINTS)), probe_surplus,
          probe_dcgm)
