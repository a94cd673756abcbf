"""``sage serve --backend ray``: the app under Ray Serve on a real local cluster (loopback, 2 CPUs)."""

import socket

import pytest

from orchestrator.http import ServeConfig

GRID4 = [[4, 3, 0, 0], [0, 0, 0, 0], [0, 0, 2, 1], [2, 0, 3, 0]]


def test_ray_serve_answers_a_solve_and_a_run(store_dir):
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.serve")
    httpx = pytest.importorskip("httpx")
    from orchestrator.http._ray_serve import deploy, shutdown

    if ray.is_initialized():
        ray.shutdown()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    try:
        deploy(ServeConfig(store=str(store_dir), token=""), host="127.0.0.1", port=port, replicas=1, num_cpus=2)
        assert ray.cluster_resources()["CPU"] == 2
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=120) as client:
            r = client.post("/v1/solve", json={"puzzle": GRID4})
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["verified"] and all(sorted(row) == [1, 2, 3, 4] for row in body["answer"])
            r = client.post("/v1/solve", json={"puzzle": [[0, 0], [0, 3]]})
            assert r.status_code == 422 and r.json()["field"] == "puzzle[1][1]"
            assert client.get("/healthz").json()["solves"]["solved"] == 1
            run = client.post("/v1/runs", json={"pipeline": "toy_chain"})
            assert run.status_code == 201
            with client.stream("GET", run.json()["events"]) as stream:
                kinds = [line[7:] for line in stream.iter_lines() if line.startswith("event: ")]
            assert kinds[-1] == "end" and kinds.count("halt") == 3 and "step" in kinds
    finally:
        shutdown()
