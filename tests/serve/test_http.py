"""The HTTP API through FastAPI's TestClient (and one real uvicorn server for disconnects)."""

import json
import socket
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.http import ServeConfig, create_app
from orchestrator.service import Limits, Service
from persistence import SessionStore

from .fakes import Countdown

TestClient = pytest.importorskip("fastapi.testclient").TestClient

GRID4 = [[4, 3, 0, 0], [0, 0, 0, 0], [0, 0, 2, 1], [2, 0, 3, 0]]
TOY_TOML = """
[pipeline]
name = "serve-test"
[nodes.a]
plugin = "slow_toy"
config = { dim = 6, lr = 0.05, noise = 1e-3 }
seed = 5
halt = { max_steps = STEPS }
"""


def toy(steps: int) -> str:
    return TOY_TOML.replace("STEPS", str(steps))


@pytest.fixture
def client(store_dir):
    with TestClient(create_app(ServeConfig(store=str(store_dir), token=""))) as c:
        yield c


def sse(client, run_id):
    """Every (event name, data) of a run's stream, read to its end."""
    out, name = [], None
    with client.stream("GET", f"/v1/runs/{run_id}/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        for line in stream.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                out.append((name, json.loads(line[6:])))
    return out


def wait_status(client, run_id, wanted, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(f"/v1/runs/{run_id}").json()
        if body["status"] in wanted:
            return body
        time.sleep(0.02)
    raise AssertionError(f"run {run_id} never reached {wanted}: {body}")


def test_solve_returns_answer_energy_verified_segments(client):
    r = client.post("/v1/solve", json={"puzzle": GRID4, "mode": "irp", "max_steps": 16})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["verified"] is True and body["segments"] >= 1 and body["energy"] < 1
    assert all(sorted(row) == [1, 2, 3, 4] for row in body["answer"])


def test_listings_and_health(client):
    assert client.get("/healthz").json()["status"] == "ok"
    names = {p["name"] for p in client.get("/v1/plugins").json()}
    assert {"hrm", "toy", "countdown"} <= names
    assert "toy_chain" in client.get("/v1/pipelines").json()
    assert client.get("/v1/sessions").json() == []
    assert client.get("/docs").status_code == 200
    assert "/v1/solve" in client.get("/openapi.json").json()["paths"]
    page = client.get("/")
    assert page.status_code == 200 and "<canvas" in page.text and "http" not in page.text.split("<body>")[1].split("/docs")[0]


@pytest.mark.parametrize("body, status, field", [
    ({"puzzle": [[0, 0], [0, 3]]}, 422, "puzzle[1][1]"),
    ({"puzzle": GRID4, "max_steps": 10**6}, 422, "max_steps"),
    ({"puzzle": GRID4, "mode": 1}, 422, "mode"),
    ({"puzzle": [[1, 1, 0, 0], [0] * 4, [0] * 4, [0] * 4]}, 422, "puzzle"),
    ({"puzzle": [[0] * 5] * 5}, 422, "puzzle"),
    ({"puzzle": GRID4, "plugin": "missing"}, 422, "plugin"),
])
def test_solve_errors_name_the_field(client, body, status, field):
    r = client.post("/v1/solve", json=body)
    assert r.status_code == status
    assert r.json()["field"] == field and r.json()["error"]


def test_body_size_limit_is_413(client):
    big = json.dumps({"puzzle": GRID4, "seed": 0}).replace(" ", " " * 70000)
    r = client.post("/v1/solve", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and "limit" in r.json()["error"]


def test_solve_an_image_reads_then_solves(client):
    from .test_requests import png_base64
    from plugins.vision.examples import example_image

    r = client.post("/v1/solve", json={"image": png_base64(example_image())})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["read"] == GRID4  # the example shows this puzzle
    assert body["verified"] and all(sorted(row) == [1, 2, 3, 4] for row in body["answer"])
    r = client.post("/v1/solve", json={"image": png_base64(__import__("numpy").full((120, 120), 255, "uint8"))})
    assert r.status_code == 422 and r.json()["field"] == "image" and "vision" in r.json()["error"]


def test_not_json_and_wrong_routes_are_json_errors(client):
    assert client.post("/v1/solve", content=b"{oops").json()["field"] == "body"
    r = client.get("/v1/nothing")
    assert r.status_code == 404 and "see /docs" in r.json()["error"]
    r = client.put("/v1/solve", json={})
    assert r.status_code == 405 and r.json()["status"] == 405
    r = client.get("/v1/runs/.hidden")
    assert r.status_code == 404 and r.json()["field"] == "id"


def test_token_guards_everything_but_healthz(store_dir):
    with TestClient(create_app(ServeConfig(store=str(store_dir), token="s3cret"))) as c:
        assert c.get("/healthz").status_code == 200
        assert c.get("/").status_code == 200  # the page itself holds no data; it asks for the token
        for method, path in (("get", "/v1/plugins"), ("get", "/v1/sessions"), ("post", "/v1/solve"),
                             ("get", "/docs"), ("get", "/v1/runs/x/events")):
            r = getattr(c, method)(path)
            assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
            assert r.json()["field"] == "Authorization"
        assert c.get("/v1/plugins", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert c.get("/v1/plugins", headers={"Authorization": "Bearer s3cret"}).status_code == 200


def test_token_from_the_environment(store_dir, monkeypatch):
    monkeypatch.setenv("SAGE_API_TOKEN", "envtok")
    with TestClient(create_app(ServeConfig(store=str(store_dir)))) as c:
        assert c.get("/v1/plugins").status_code == 401
        assert c.get("/v1/plugins", headers={"Authorization": "Bearer envtok"}).status_code == 200


def test_queue_full_is_503_with_retry_after(store_dir, monkeypatch):
    monkeypatch.setattr(Countdown, "delay", 0.05)
    service = Service(store_dir, limits=Limits(max_queue=1))
    with TestClient(create_app(service=service)) as c:
        held = service.solver.submit(__import__("orchestrator.service", fromlist=["x"]).SolveRequest(
            [[2, 2], [2, 2]], plugin="countdown"))
        r = c.post("/v1/solve", json={"puzzle": [[1, 0], [0, 0]], "plugin": "countdown"})
        assert r.status_code == 503 and int(r.headers["retry-after"]) >= 1 and "retry" in r.json()["error"]
        held.result(10)


def test_sse_has_every_step_then_the_halt_then_end(client):
    run_id = client.post("/v1/runs", json={"toml": toy(12)}).json()["id"]
    events = sse(client, run_id)
    names = [name for name, _ in events]
    assert names == ["step"] * 12 + ["halt", "end"]
    assert [data["step"] for _, data in events[:12]] == list(range(1, 13))
    assert events[12][1]["step"] == 12 and events[12][1]["policy"] == "max_steps"
    assert events[13][1]["status"] == "done"
    status = client.get(f"/v1/runs/{run_id}").json()
    assert status["status"] == "done" and status["nodes"]["a"]["steps"] == 12
    assert [s["id"] for s in client.get("/v1/sessions").json()] == [run_id]
    # a reconnecting client resumes after the last event it saw
    with client.stream("GET", f"/v1/runs/{run_id}/events", headers={"Last-Event-ID": "11"}) as stream:
        tail = [line for line in stream.iter_lines() if line.startswith("event: ")]
    assert tail == ["event: halt", "event: end"]


def test_run_by_name_and_errors(client):
    r = client.post("/v1/runs", json={"pipeline": "toy_chain"})
    assert r.status_code == 201
    assert wait_status(client, r.json()["id"], {"done"})["nodes"]["fine"]["steps"] > 0
    assert client.post("/v1/runs", json={"pipeline": "nope"}).status_code == 404
    r = client.post("/v1/runs", json={"toml": "[nodes.a]\nplugin = 'absent'"})
    assert r.status_code == 422 and r.json()["field"] == "toml" and "absent" in r.json()["error"]
    assert client.post("/v1/runs", json={"toml": "[[["}).json()["field"] == "toml"
    r = client.post("/v1/runs", json={"toml": toy(3), "inputs": {"zz": [1.0]}})
    assert r.status_code == 422 and r.json()["field"] == "inputs"
    assert client.get("/v1/runs/nosuchrun").status_code == 404
    assert client.get("/v1/runs/nosuchrun/events").status_code == 404


def test_delete_cancels_a_run_and_resume_finishes_it(client):
    run_id = client.post("/v1/runs", json={"toml": toy(2000)}).json()["id"]
    time.sleep(0.1)
    r = client.delete(f"/v1/runs/{run_id}")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    steps = r.json()["nodes"]["a"]["steps"]
    assert 0 < steps < 2000
    assert client.post(f"/v1/runs/{run_id}/resume").status_code == 200
    assert client.post(f"/v1/runs/{run_id}/resume").status_code == 409  # already running
    done = wait_status(client, run_id, {"done"}, timeout=60)
    assert done["nodes"]["a"]["steps"] == 2000
    assert client.post(f"/v1/runs/{run_id}/resume").status_code == 409  # finished


def test_run_survives_a_restart_and_resumes_bit_identically(store_dir):
    steps = 600
    with TestClient(create_app(ServeConfig(store=str(store_dir), token=""))) as c:
        run_id = c.post("/v1/runs", json={"toml": toy(steps)}).json()["id"]
        time.sleep(0.2)
    # the server stopped: its shutdown checkpointed the run half-way
    with TestClient(create_app(ServeConfig(store=str(store_dir), token=""))) as c:
        saved = c.get(f"/v1/runs/{run_id}").json()
        assert saved["status"] == "saved" and 0 < saved["nodes"]["a"]["steps"] < steps
        assert c.post(f"/v1/runs/{run_id}/resume").status_code == 200
        events = sse(c, run_id)
        assert events[-1][1]["status"] == "done"
        assert [d["step"] for n, d in events if n == "step"][0] == saved["nodes"]["a"]["steps"] + 1
        ref_id = c.post("/v1/runs", json={"toml": toy(steps)}).json()["id"]
        wait_status(c, ref_id, {"done"}, timeout=60)
    store = SessionStore(store_dir)
    resumed, uninterrupted = store.load(run_id), store.load(ref_id)
    a, b = resumed.orchestrator["nodes"]["a"], uninterrupted.orchestrator["nodes"]["a"]
    assert len(a["energies"]) == steps + 1
    assert a["energies"] == b["energies"]  # exact float equality, step by step
    ta, tb = resumed.nodes["a"].tensors, uninterrupted.nodes["a"].tensors
    assert set(ta) == set(tb) and all(ta[k].numpy().tobytes() == tb[k].numpy().tobytes() for k in ta)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=30)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=json_values | st.fixed_dictionaries({"puzzle": json_values}, optional={
    "mode": json_values, "max_steps": json_values, "seed": json_values, "plugin": json_values}))
def test_hostile_solve_bodies_are_4xx_never_500(client, body):
    if isinstance(body, dict) and body.get("plugin") == "hrm":
        body["plugin"] = "countdown"
    r = client.post("/v1/solve", content=json.dumps(body))
    assert r.status_code == 200 or 400 <= r.status_code < 500, r.text
    if r.status_code != 200:
        assert r.json()["error"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=json_values | st.fixed_dictionaries({}, optional={
    "pipeline": json_values, "toml": json_values, "inputs": json_values, "budget": json_values}))
def test_hostile_run_bodies_are_4xx_never_500(client, body):
    r = client.post("/v1/runs", content=json.dumps(body))
    assert r.status_code in (201, 404, 422) or 400 <= r.status_code < 500, r.text


@pytest.mark.parametrize("raw", [b"[" * 40000 + b"]" * 20000, b'{"puzzle": ' + b"9" * 5000 + b"}",
                                 b'{"puzzle": NaN}', b"\xff" * 10, b'{"puzzle": [[1e400]]}'])
def test_pathological_bytes_are_4xx(client, raw):
    r = client.post("/v1/solve", content=raw)
    assert 400 <= r.status_code < 500 and r.json()["error"]


def test_client_disconnect_cancels_the_solve(store_dir, monkeypatch, live_server):
    monkeypatch.setattr(Countdown, "delay", 0.05)
    service = Service(store_dir)
    _, port = live_server(create_app(service=service))
    body = json.dumps({"puzzle": [[2, 2], [2, 2]], "plugin": "countdown"}).encode()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"POST /v1/solve HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        time.sleep(0.15)  # the solve is stepping (8 steps of 50 ms)
    deadline = time.monotonic() + 5
    while service.solver.counts["cancelled"] == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert service.solver.counts == {"solved": 0, "refused": 0, "cancelled": 1, "rejected": 0, "failed": 0}
    assert Countdown.calls["step_batch"] + Countdown.calls["step"] < 8
