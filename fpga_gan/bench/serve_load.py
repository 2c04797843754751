"""The web API under load: N concurrent clients send a fixed number of requests over loopback.

The server is the real one (uvicorn, the zoo's artifacts on the cpu backend, a synthetic
catalogue); the clients are threads with the standard library's HTTP client, so the figures
include JSON and PNG encoding, the queue in front of each accelerator and the event loop. The
request mix cycles through a try-on, a garment edit and a sample of four designs, the page's
three actions.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np

__all__ = ["bench_serve"]


def _requests(catalogue: dict, count: int) -> list[tuple[str, str, dict | None]]:
    persons, garments = [p["id"] for p in catalogue["persons"]], [g["id"] for g in catalogue["garments"]]
    plan = []
    for i in range(count):
        person, garment = persons[i % len(persons)], garments[(i + 1) % len(garments)]
        plan.append([("tryon", "/api/tryon", {"person": person, "garment": garment}),
                     ("design/edit", "/api/design/edit", {"garment": garment, "edit": {"colour": "#aa3300"}}),
                     ("design/sample", f"/api/design/sample?n=4&seed={i}", None)][i % 3])
    return plan


def _call(url: str, body: dict | None, timeout: float) -> tuple[float, int]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
            status = response.status
    except urllib.error.HTTPError as err:
        status = err.code
    except (urllib.error.URLError, TimeoutError, ConnectionError):
        status = 0
    return time.perf_counter() - started, status


def bench_serve(clients: int, requests: int, backend: str = "cpu", timeout: float = 120.0) -> dict:
    """Latency and throughput of ``requests`` requests from ``clients`` concurrent clients."""
    from ..serve import ServeConfig, create_app, running_server

    with running_server(create_app(ServeConfig(backend=backend))) as url:
        with urllib.request.urlopen(url + "/api/catalogue", timeout=timeout) as response:
            catalogue = json.loads(response.read())
        plan = _requests(catalogue, requests)
        _call(url + plan[0][1], plan[0][2], timeout)          # warm-up, not counted
        lock, results = threading.Lock(), []

        def one(entry: tuple[str, str, dict | None]) -> None:
            seconds, status = _call(url + entry[1], entry[2], timeout)
            with lock:
                results.append((entry[0], seconds, status))

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=clients) as pool:
            list(pool.map(one, plan))
        wall = time.perf_counter() - started

    def summary(rows: list) -> dict:
        ms = np.array([1e3 * s for _, s, _ in rows])
        return {"requests": len(rows), "errors": sum(status != 200 for _, _, status in rows),
                "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99))}

    return {"clients": clients, "backend": backend, "seconds": wall, "requests_per_s": len(results) / wall,
            **summary(results), "provenance": "measured",
            "by_endpoint": {name: summary([r for r in results if r[0] == name])
                            for name in dict.fromkeys(name for name, _, _ in plan)}}
