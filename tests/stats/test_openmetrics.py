"""OpenMetrics endpoints and the DCGM exporter, scraped from a real HTTP server."""

from __future__ import annotations

import json
import math
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from wbtool.settings import Settings
from wbtool.stats import dcgm, openmetrics
from wbtool.stats.base import Collector, Target
from wbtool.stats.promtext import parse, parse_line, series_key
from wbtool.stats.sampler import Sampler

# The example of the Prometheus text exposition format's documentation, then
# what that example leaves out: NaN and -Inf, an OpenMetrics exemplar and
# float timestamp, a trailing comma, a quoted UTF-8 name, a malformed line.
EXPOSITION = r'''# HELP http_requests_total The total number of HTTP requests.
# TYPE http_requests_total counter
http_requests_total{method="post",code="200"} 1027 1395066363000
http_requests_total{code="400",method="post"}    3 1395066363000

# Escaping in label values:
msdos_file_access_time_seconds{path="C:\\DIR\\FILE.TXT",error="Cannot find file:\n\"FILE.TXT\""} 1.458255915e9

# Minimalistic line:
metric_without_timestamp_and_labels 12.47

# A weird metric from before the epoch:
something_weird{problem="division by zero"} +Inf -3982045

# A histogram, which has a pretty complex representation in the text format:
# HELP http_request_duration_seconds A histogram of the request duration.
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{le="0.05"} 24054
http_request_duration_seconds_bucket{le="0.1"} 33444
http_request_duration_seconds_bucket{le="0.2"} 100392
http_request_duration_seconds_bucket{le="0.5"} 129389
http_request_duration_seconds_bucket{le="1"} 133988
http_request_duration_seconds_bucket{le="+Inf"} 144320
http_request_duration_seconds_sum 53423
http_request_duration_seconds_count 144320

# Finally a summary, which has a complex representation, too:
# HELP rpc_duration_seconds A summary of the RPC duration in seconds.
# TYPE rpc_duration_seconds summary
rpc_duration_seconds{quantile="0.01"} 3102
rpc_duration_seconds{quantile="0.05"} 3272
rpc_duration_seconds{quantile="0.5"} 4773
rpc_duration_seconds{quantile="0.9"} 9001
rpc_duration_seconds{quantile="0.99"} 76656
rpc_duration_seconds_sum 1.7560473e+07
rpc_duration_seconds_count 2693
gpu_fan_ratio{gpu="1",} NaN
temperature_delta_celsius -Inf
jobs_total{queue="a b"} 17 1700000000.250 # {trace_id="KOO5S4vxi0o"} 0.67
{"my.dotted.metric","service.name"="web"} 4
this line is not a sample
# EOF
'''  # noqa: E501

SECRET = {"Authorization": "Bearer s3cret"}

# A Prometheus /api/v1/query answer holding DCGM exporter series, labelled the
# way dcgm-exporter labels them.
_GPU_LABELS = {"modelName": "NVIDIA H100 80GB HBM3", "Hostname": "node-7",
               "DCGM_FI_DRIVER_VERSION": "580.159.04", "instance": "10.0.0.7:9400",
               "job": "dcgm"}


def _series(name: str, gpu: str, value: str, **labels: str) -> dict[str, Any]:
    metric = {"__name__": name, "gpu": gpu, "UUID": f"GPU-000{gpu}", "device": f"nvidia{gpu}",
              **_GPU_LABELS, **labels}
    return {"metric": metric, "value": [1732280000.123, value]}


DCGM_VECTOR = {"status": "success", "data": {"resultType": "vector", "result": [
    _series("DCGM_FI_DEV_GPU_UTIL", "0", "87"),
    _series("DCGM_FI_DEV_GPU_UTIL", "1", "0"),
    _series("DCGM_FI_DEV_FB_USED", "0", "1024"),
    _series("DCGM_FI_DEV_FB_FREE", "0", "80000"),
    _series("DCGM_FI_DEV_FB_RESERVED", "0", "535"),
    _series("DCGM_FI_DEV_GPU_TEMP", "0", "41"),
    _series("DCGM_FI_DEV_POWER_USAGE", "0", "350.5"),
    _series("DCGM_FI_DEV_POWER_MGMT_LIMIT", "0", "700"),
    _series("DCGM_FI_DEV_SM_CLOCK", "0", "1980"),
    _series("DCGM_FI_DEV_MEM_CLOCK", "0", "2619"),
    _series("DCGM_FI_PROF_SM_ACTIVE", "0", "NaN"),
]}}
DCGM_QUERY = 'DCGM_FI_DEV_GPU_UTIL{Hostname="node-7", job="dcgm"}'


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self.server.requests.append((self.path, dict(self.headers)))
        url = urlsplit(self.path)
        if url.path in self.server.answers:  # set by a test
            self._send(200, self.server.answers[url.path], "application/json")
        elif url.path == "/metrics":
            self._send(200, EXPOSITION, "text/plain; version=0.0.4; charset=utf-8")
        elif url.path == "/secure/metrics":
            if self.headers.get("Authorization") == SECRET["Authorization"]:
                self._send(200, EXPOSITION, "text/plain; version=0.0.4")
            else:
                self._send(401, "unauthorized\n", "text/plain")
        elif url.path == "/api/v1/query":
            query = parse_qs(url.query).get("query", [""])[0]
            if query == DCGM_QUERY:
                self._send(200, json.dumps(DCGM_VECTOR), "application/json")
            else:
                self._send(400, json.dumps({"status": "error", "errorType": "bad_data",
                                            "error": "parse error"}), "application/json")
        elif url.path == "/dcgm/metrics":
            self._send(200, "# TYPE DCGM_FI_DEV_GPU_TEMP gauge\n"
                       'DCGM_FI_DEV_GPU_TEMP{gpu="0",UUID="GPU-0"} 39\n'
                       'DCGM_FI_DEV_GPU_TEMP{gpu="1",UUID="GPU-1"} 44\n', "text/plain")
        elif url.path == "/odd-charset/metrics":
            self._send(200, EXPOSITION, "text/plain; version=0.0.4; charset=x-nonesuch")
        elif url.path == "/cut/metrics":  # the connection closes half way through a number
            self.send_response(200)
            self.send_header("Content-Length", "40")
            self.end_headers()
            self.wfile.write(b"up 1\nrequests_total 12")
            self.close_connection = True
        elif url.path == "/drip/metrics":  # a byte at a time, each well within the timeout
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            try:
                for _ in range(40):
                    self.wfile.write(b"#")
                    self.wfile.flush()
                    time.sleep(0.1)
            except OSError:  # the client gave up
                pass
        else:
            self._send(500, "boom\n", "text/plain")

    def _send(self, status: int, body: str, content_type: str) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    requests: list[tuple[str, dict[str, str]]]
    answers: dict[str, str]  # path → body, as a test wants it


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, _Server]]:
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy",
                 "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "*")
    httpd = _Server(("127.0.0.1", 0), _Handler)
    httpd.requests = []
    httpd.answers = {}
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", httpd
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def _collectors(**settings: Any) -> list[Collector]:
    values = Settings(**settings).to_dict()
    found = [probe(values, Target()) for probe in openmetrics.PROBES]
    return [c for c in found if c is not None]


def _one(**settings: Any) -> Collector:
    (collector,) = _collectors(**settings)
    return collector


# -- the text format -----------------------------------------------------------------


def test_parse_reads_every_sample_and_skips_the_rest() -> None:
    samples = {series_key(name, labels): value for name, labels, value in parse(EXPOSITION)}
    assert samples['http_requests_total{code="200",method="post"}'] == 1027
    assert samples['http_requests_total{code="400",method="post"}'] == 3
    assert samples["metric_without_timestamp_and_labels"] == 12.47
    assert samples['something_weird{problem="division by zero"}'] == math.inf
    assert samples["temperature_delta_celsius"] == -math.inf
    assert math.isnan(samples['gpu_fan_ratio{gpu="1"}'])
    assert samples['jobs_total{queue="a b"}'] == 17
    assert samples['my.dotted.metric{"service.name"="web"}'] == 4
    assert samples['http_request_duration_seconds_bucket{le="+Inf"}'] == 144320
    assert samples["http_request_duration_seconds_sum"] == 53423
    assert samples["http_request_duration_seconds_count"] == 144320
    assert samples['rpc_duration_seconds{quantile="0.99"}'] == 76656
    assert samples["rpc_duration_seconds_sum"] == 1.7560473e07
    assert len(samples) == 24  # every sample line; the malformed one left out


def test_label_values_are_unescaped_and_escaped_back() -> None:
    ((name, labels, value),) = parse(
        r'msdos{path="C:\\DIR\\FILE.TXT",error="Cannot find file:\n\"FILE.TXT\""} 1.5e9')
    assert name == "msdos" and value == 1.5e9
    assert dict(labels) == {"path": "C:\\DIR\\FILE.TXT",
                            "error": 'Cannot find file:\n"FILE.TXT"'}
    key = series_key(name, labels)
    assert key == r'msdos{error="Cannot find file:\n\"FILE.TXT\"",path="C:\\DIR\\FILE.TXT"}'
    assert "\n" not in key
    assert parse(key + " 1") == [(name, labels, 1.0)]  # the name reads back as the series


def test_series_key_does_not_depend_on_label_order() -> None:
    a = parse_line('m{b="2",a="1",c=""} 1')
    b = parse_line('m { c = "" , a="1",b="2" } 1')
    assert a is not None and b is not None
    assert series_key(a[0], a[1]) == series_key(b[0], b[1]) == 'm{a="1",b="2",c=""}'
    assert series_key("plain", ()) == "plain"


@pytest.mark.parametrize("line", ['m{a="1" 1', "m", 'm{a=1} 2', "m 1 2 3", "9m 1", "m abc",
                                  '{"a","b"} 1'])
def test_malformed_lines_are_refused(line: str) -> None:
    with pytest.raises(ValueError):
        parse_line(line)


# -- endpoints -----------------------------------------------------------------------


def test_an_endpoint_is_scraped_into_openmetrics_keys(server: tuple[str, _Server]) -> None:
    base, _ = server
    collector = _one(x_stats_open_metrics_endpoints={"app": f"{base}/metrics"})
    assert collector.name == "openmetrics.app"
    reading = collector.sample()
    assert reading['openmetrics.app.http_requests_total{code="200",method="post"}'] == 1027
    assert reading['openmetrics.app.something_weird{problem="division by zero"}'] == math.inf
    assert math.isnan(reading['openmetrics.app.gpu_fan_ratio{gpu="1"}'])
    assert reading['openmetrics.app.http_request_duration_seconds_bucket{le="0.5"}'] == 129389
    assert reading["openmetrics.app.rpc_duration_seconds_count"] == 2693
    assert len(reading) == 24
    assert collector.sample().keys() == reading.keys()  # the same names every scrape
    assert collector.inventory() == {}


def test_one_collector_per_endpoint_in_name_order(server: tuple[str, _Server]) -> None:
    base, _ = server
    found = _collectors(x_stats_open_metrics_endpoints={
        "zeta": f"{base}/metrics", "alpha": f"{base}/metrics"})
    assert [c.name for c in found] == ["openmetrics.alpha", "openmetrics.zeta"]


def test_sequence_filters_keep_matching_metrics(server: tuple[str, _Server]) -> None:
    base, _ = server
    collector = _one(x_stats_open_metrics_endpoints={"app": f"{base}/metrics"},
                     x_stats_open_metrics_filters=["^app\\.http_requests_total$",
                                                   "rpc_duration_seconds_count"])
    assert collector.sample() == {
        'openmetrics.app.http_requests_total{code="200",method="post"}': 1027.0,
        'openmetrics.app.http_requests_total{code="400",method="post"}': 3.0,
        "openmetrics.app.rpc_duration_seconds_count": 2693.0,
    }


def test_mapping_filters_check_labels_too(server: tuple[str, _Server]) -> None:
    base, _ = server
    collector = _one(
        x_stats_open_metrics_endpoints={"app": f"{base}/metrics"},
        x_stats_open_metrics_filters={
            "app\\.http_requests_total": {"code": "^2\\d\\d$"},
            # _sum and _count match the name but have no quantile label
            "app\\.rpc_duration_seconds": {"quantile": "^0\\.9"},
            "^other\\.": {},  # another endpoint's: matches nothing here
        })
    assert collector.sample() == {
        'openmetrics.app.http_requests_total{code="200",method="post"}': 1027.0,
        'openmetrics.app.rpc_duration_seconds{quantile="0.9"}': 9001.0,
        'openmetrics.app.rpc_duration_seconds{quantile="0.99"}': 76656.0,
    }


def test_custom_headers_are_sent(server: tuple[str, _Server]) -> None:
    base, httpd = server
    collector = _one(x_stats_open_metrics_endpoints={"secure": f"{base}/secure/metrics"},
                     x_stats_open_metrics_http_headers={**SECRET, "X-Team": "vision"})
    reading = collector.sample()
    assert reading['openmetrics.secure.http_requests_total{code="400",method="post"}'] == 3
    path, headers = httpd.requests[-1]
    assert path == "/secure/metrics"
    assert headers["Authorization"] == "Bearer s3cret" and headers["X-Team"] == "vision"
    assert headers["User-Agent"].startswith("wbtool/")


def test_a_failing_endpoint_stops_alone_with_one_warning(server: tuple[str, _Server]) -> None:
    base, _ = server
    collectors = _collectors(x_stats_open_metrics_endpoints={
        "locked": f"{base}/secure/metrics", "open": f"{base}/metrics"})
    warnings: list[str] = []
    sampler = Sampler(collectors, lambda row: None, interval=60, started=0,
                      warn=warnings.append)
    rows = [sampler.sample_once() for _ in range(openmetrics.MAX_FAILURES + 2)]
    assert len(warnings) == 1
    assert "openmetrics.locked" in warnings[0] and "401" in warnings[0]
    assert [c.name for c in sampler.collectors] == ["openmetrics.open"]
    assert all('openmetrics.open.http_requests_total{code="200",method="post"}' in row
               for row in rows)
    assert not any(key.startswith("openmetrics.locked.") for row in rows for key in row)


def test_an_unreachable_endpoint_fails_after_repeated_tries() -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    collector = _one(x_stats_open_metrics_endpoints={"gone": f"http://127.0.0.1:{port}/m"})
    for _ in range(openmetrics.MAX_FAILURES - 1):
        assert collector.sample() == {}
    with pytest.raises(ConnectionError, match="'gone'"):
        collector.sample()


def test_a_recovered_endpoint_starts_counting_again(server: tuple[str, _Server]) -> None:
    base, _ = server
    collector = _one(x_stats_open_metrics_endpoints={"app": f"{base}/broken"})
    assert isinstance(collector, openmetrics.Endpoint)
    for _ in range(openmetrics.MAX_FAILURES - 1):
        assert collector.sample() == {}
    collector.url = f"{base}/metrics"
    assert collector.sample()
    collector.url = f"{base}/broken"
    assert collector.sample() == {}  # counting from zero again: no error yet


def test_an_endpoint_that_sends_a_byte_at_a_time_fails_within_the_timeout(
        server: tuple[str, _Server]) -> None:
    base, _ = server
    collector = openmetrics.Endpoint("slow", f"{base}/drip/metrics",
                                     filters=openmetrics.Filters(None), headers={}, timeout=0.5)
    started = time.monotonic()
    assert collector.sample() == {}
    assert time.monotonic() - started < 2.0
    assert collector.failures == 1


def test_an_unknown_charset_is_read_as_utf8(server: tuple[str, _Server]) -> None:
    base, _ = server
    collector = _one(x_stats_open_metrics_endpoints={"app": f"{base}/odd-charset/metrics"})
    reading = collector.sample()
    assert reading["openmetrics.app.metric_without_timestamp_and_labels"] == 12.47


def test_an_answer_cut_short_of_its_length_is_a_failed_scrape(
        server: tuple[str, _Server]) -> None:
    base, _ = server
    collector = _one(x_stats_open_metrics_endpoints={"cut": f"{base}/cut/metrics"})
    assert collector.sample() == {}
    assert isinstance(collector, openmetrics.Endpoint) and collector.failures == 1


def test_no_endpoints_no_collectors() -> None:
    started = time.perf_counter()
    assert _collectors() == []
    assert _collectors(x_stats_open_metrics_endpoints={}) == []
    assert time.perf_counter() - started < 0.5


@pytest.mark.parametrize("settings", [
    {"x_stats_open_metrics_endpoints": {"a": "file:///etc/passwd"}},
    {"x_stats_open_metrics_endpoints": {"a": "localhost:9100/metrics"}},
    {"x_stats_open_metrics_endpoints": {"a": "http://h/m"},
     "x_stats_open_metrics_filters": ["(unclosed"]},
    {"x_stats_open_metrics_endpoints": {"a": "http://h/m"},
     "x_stats_open_metrics_filters": {"a": "not a mapping"}},
    {"x_stats_open_metrics_endpoints": {"a": "http://h/m"},
     "x_stats_open_metrics_http_headers": {"X-N": 1}},
    {"x_stats_dcgm_exporter": "http://h:9090/api/v1/query"},  # no query=
])
def test_bad_settings_are_refused_by_the_probe(settings: dict[str, Any]) -> None:
    values = Settings(**settings).to_dict()
    with pytest.raises(ValueError):
        for probe in openmetrics.PROBES:
            probe(values, Target())


def test_bad_shared_settings_are_reported_once() -> None:
    values = Settings(x_stats_open_metrics_endpoints={"a": "http://h/m", "b": "http://h/m"},
                      x_stats_open_metrics_filters=["(unclosed"]).to_dict()
    with pytest.raises(ValueError, match="unclosed"):
        openmetrics.PROBES[0](values, Target())
    assert openmetrics.PROBES[1](values, Target()) is None


def test_endpoints_beyond_the_limit_are_warned_about() -> None:
    many = {f"e{i:03}": "http://127.0.0.1:9/m" for i in range(openmetrics.MAX_ENDPOINTS + 3)}
    values = Settings(x_stats_open_metrics_endpoints=many).to_dict()
    found = [probe(values, Target()) for probe in openmetrics.PROBES[:-2]]
    assert len([c for c in found if c is not None]) == openmetrics.MAX_ENDPOINTS
    with pytest.raises(ValueError, match=f"first {openmetrics.MAX_ENDPOINTS} of"):
        openmetrics.probe_surplus(values, Target())


# -- DCGM exporter -------------------------------------------------------------------


def test_dcgm_query_becomes_gpu_keys(server: tuple[str, _Server]) -> None:
    base, httpd = server
    collector = _one(x_stats_dcgm_exporter=f"{base}/api/v1/query?query={DCGM_QUERY}",
                     x_stats_open_metrics_http_headers=SECRET)
    assert collector.name == "dcgm_exporter"
    reading = collector.sample()
    path, headers = httpd.requests[-1]
    assert parse_qs(urlsplit(path).query) == {"query": [DCGM_QUERY]}
    assert headers["Authorization"] == "Bearer s3cret"
    assert headers["Accept"] == "application/json"
    host = "/l:node-7"
    nan = reading.pop(f"gpu.0.DCGM_FI_PROF_SM_ACTIVE{host}")
    assert math.isnan(nan)
    assert reading == {
        f"gpu.0.gpu{host}": 87.0,
        f"gpu.1.gpu{host}": 0.0,
        f"gpu.0.memoryAllocatedBytes{host}": 1024 * 1024 * 1024,
        f"gpu.0.memoryAllocated{host}": pytest.approx(1024 / (1024 + 80000 + 535) * 100),
        f"gpu.0.DCGM_FI_DEV_FB_FREE{host}": 80000.0,
        f"gpu.0.DCGM_FI_DEV_FB_RESERVED{host}": 535.0,
        f"gpu.0.temp{host}": 41.0,
        f"gpu.0.powerWatts{host}": 350.5,
        f"gpu.0.DCGM_FI_DEV_POWER_MGMT_LIMIT{host}": 700.0,
        f"gpu.0.powerPercent{host}": pytest.approx(50.07142857),
        f"gpu.0.smClock{host}": 1980.0,
        f"gpu.0.memoryClock{host}": 2619.0,
    }


def test_dcgm_query_errors_count_as_failures(server: tuple[str, _Server]) -> None:
    base, _ = server
    collector = _one(x_stats_dcgm_exporter=f"{base}/api/v1/query?query=up")
    for _ in range(openmetrics.MAX_FAILURES - 1):
        assert collector.sample() == {}
    with pytest.raises(ConnectionError, match="DCGM"):
        collector.sample()


@pytest.mark.parametrize("payload", [
    {"status": "success", "data": [1]},
    {"status": "success", "data": {"resultType": "vector", "result": 5}},
    {"status": "success", "data": {"resultType": "vector", "result": [
        1, None, {"metric": [1], "value": [0, "1"]}, {"metric": {"device": 5}, "value": [0, "1"]},
    ]}},
])
def test_dcgm_answers_of_the_wrong_shape_count_as_failures(
        payload: dict[str, Any], server: tuple[str, _Server]) -> None:
    """JSON that is no instant vector fails a scrape like any other bad answer
    (it stopped the collector at once); samples of the wrong shape are skipped."""
    base, httpd = server
    httpd.answers["/odd/api/v1/query"] = json.dumps(payload)
    collector = dcgm.DCGMExporter(f"{base}/odd/api/v1/query?query=up", headers={})
    for _ in range(openmetrics.MAX_FAILURES - 1):
        assert collector.sample() == {}


def test_dcgm_exporter_metrics_page_is_read_too(server: tuple[str, _Server]) -> None:
    base, _ = server
    collector = _one(x_stats_dcgm_exporter=f"{base}/dcgm/metrics")
    assert collector.sample() == {"gpu.0.temp": 39.0, "gpu.1.temp": 44.0}


def test_dcgm_samples_without_a_gpu_index_are_skipped() -> None:
    samples = dcgm.vector_samples({"status": "success", "data": {"resultType": "vector",
                                                                 "result": [
        {"metric": {"__name__": "DCGM_FI_DEV_GPU_TEMP", "device": "nvidia3"},
         "value": [1.0, "50"]},
        {"metric": {"__name__": "DCGM_FI_DEV_GPU_TEMP"}, "value": [1.0, "51"]},
        {"metric": {"__name__": "DCGM_FI_DEV_GPU_TEMP", "gpu": "2", "node": "n1"},
         "value": [1.0, "+Inf"]},
        {"metric": {"__name__": "broken"}},
    ]}})
    assert dcgm.gpu_readings(samples) == {"gpu.3.temp": 50.0, "gpu.2.temp/l:n1": math.inf}
    with pytest.raises(ValueError, match="instant vector"):
        dcgm.vector_samples({"status": "success", "data": {"resultType": "matrix"}})


def test_dcgm_url_queries_are_split_and_encoded() -> None:
    urls = dcgm.query_urls('http://p:9090/api/v1/query?query=up{a="b c"}&query=x&timeout=2s')
    assert urls == ["http://p:9090/api/v1/query?timeout=2s&query=up%7Ba%3D%22b%20c%22%7D",
                    "http://p:9090/api/v1/query?timeout=2s&query=x"]
    assert dcgm.query_urls("http://p:9090?query=up") == ["http://p:9090/api/v1/query?query=up"]
