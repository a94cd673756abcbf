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


SOLVE_CASES = [  # (body as bytes, headers): success, 422s naming fields, 413 by Content-Length, not JSON
    (json.dumps({"puzzle": GRID4, "max_steps": 16}).encode(), {}),
    (json.dumps({"puzzle": [[0, 0], [0, 3]]}).encode(), {}),
    (json.dumps({"puzzle": GRID4, "plugin": "missing"}).encode(), {}),
    (json.dumps({"puzzle": GRID4, "colour": 1}).encode(), {}),
    (json.dumps({"puzzle": [[1, 1, 0, 0], [0] * 4, [0] * 4, [0] * 4]}).encode(), {}),
    (json.dumps({"puzzle": GRID4}).replace(" ", " " * 70000).encode(), {}),
    (b"{oops", {}),
    (b"\xff\xfe", {}),
]


def _comparable(r):
    body = r.json()
    for volatile in ("session", "elapsed_s"):
        body.pop(volatile, None)
    return r.status_code, r.headers["content-type"], r.headers.get("retry-after"), body


@pytest.mark.parametrize("token", ["", "s3cret"])
def test_solve_fast_path_answers_as_the_route(store_dir, token):
    """POST /v1/solve is answered before FastAPI (app.fast_solve); the route, reached with the fast
    path off, gives the same statuses, headers and bodies (the token checked by both)."""
    service = Service(store_dir)
    app = create_app(ServeConfig(token=token), service=service)
    auth = {"Authorization": f"Bearer {token}"} if token else {}
    with TestClient(app) as c:
        answers = {}
        for fast in (True, False):
            app.fast_solve = fast
            answers[fast] = [_comparable(c.post("/v1/solve", content=body, headers={**auth, **headers}))
                             for body, headers in SOLVE_CASES]
            if token:
                answers[fast].append(_comparable(c.post("/v1/solve", json={"puzzle": GRID4})))
                answers[fast].append(_comparable(c.post("/v1/solve", json={"puzzle": GRID4},
                                                        headers={"Authorization": "Bearer wrong"})))
        assert answers[True] == answers[False]
        statuses = [a[0] for a in answers[True]]
        assert statuses[:8] == [200, 422, 422, 422, 422, 413, 422, 422]
        assert [a[3]["field"] for a in answers[True][1:5]] == ["puzzle[1][1]", "plugin", "colour", "puzzle"]
        if token:
            assert statuses[8:] == [401, 401]
        assert service.solver.counts["solved"] == 2


def test_solve_fast_path_streamed_body_limit_and_503(store_dir, monkeypatch):
    """A body streamed without Content-Length is held to the limit; a full queue is a 503 with
    Retry-After on the fast path as on the route."""
    monkeypatch.setattr(Countdown, "delay", 0.05)
    service = Service(store_dir, limits=Limits(max_queue=1, max_body_bytes=1000))
    app = create_app(service=service)
    with TestClient(app) as c:
        def chunks():
            yield b'{"puzzle": [[1, 0], [0, 0]], "plugin": "countdown", "mode": "irp"'
            for _ in range(40):
                yield b" " * 100
            yield b"}"

        r = c.post("/v1/solve", content=chunks())
        assert r.status_code == 413 and "limit" in r.json()["error"]
        ok = c.post("/v1/solve", content=iter([b'{"puzzle": [[1, 0], ', b'[0, 0]], "plugin": "countdown"}']))
        assert ok.status_code == 200 and ok.json()["answer"] == 0
        held = service.solver.submit(__import__("orchestrator.service", fromlist=["x"]).SolveRequest(
            [[2, 2], [2, 2]], plugin="countdown"))
        for fast in (True, False):
            app.fast_solve = fast
            r = c.post("/v1/solve", json={"puzzle": [[1, 0], [0, 0]], "plugin": "countdown"})
            assert r.status_code == 503 and r.headers["retry-after"] == "1" and "retry" in r.json()["error"]
        held.result(10)


def test_read_body_from_asgi_messages():
    """The body from its ASGI messages: joined across chunks, 413 from Content-Length before
    reading or as soon as the chunks pass the limit, a disconnect mid-body is the client gone."""
    import asyncio

    from orchestrator.http._app import _ClientGone, read_body
    from orchestrator.service import RequestError

    def read(messages, headers=(), limit=10):
        queue = list(messages)

        async def receive():
            return queue.pop(0)

        return asyncio.run(read_body({"headers": list(headers)}, receive, limit))

    def chunk(body, more=True):
        return {"type": "http.request", "body": body, "more_body": more}

    assert read([chunk(b"0123456789", False)]) == b"0123456789"
    assert read([chunk(b"01234"), chunk(b""), chunk(b"56789", False)]) == b"0123456789"
    assert read([{"type": "http.request"}]) == b""
    for messages, headers in (([chunk(b"0123456789x", False)], ()), ([chunk(b"012345"), chunk(b"6789x")], ()),
                              ([], [(b"content-length", b"11")])):
        with pytest.raises(RequestError) as err:
            read(messages, headers)
        assert err.value.status == 413
    with pytest.raises(_ClientGone):
        read([chunk(b"0123"), {"type": "http.disconnect"}])


def test_solve_result_to_dict_is_attrs_asdict():
    import attrs

    from orchestrator.service import SolveResult

    for answer, read, claims in [([[1, 2], [2, 1]], None, None), (["#S", "G#"], [[1, 0], [0, 0]], [{"claim": "a",
                                                                                                "true": True}]),
                                 ({"k": [1, (2, 3)]}, None, None), ((1, 2), None, None)]:
        result = SolveResult("s", "p", answer, 0.5, True, 1, "verified", "d", 0.1, read, claims)
        assert result.to_dict() == attrs.asdict(result) and list(result.to_dict()) == list(attrs.asdict(result))
        assert type(result.to_dict()["answer"]) is type(attrs.asdict(result)["answer"])
        if isinstance(answer, list):
            assert result.to_dict()["answer"] is not answer  # a copy, as asdict makes


def test_chunked_solve_on_a_real_server(store_dir, live_server):
    """uvicorn hands a chunked body over in several messages: the fast path joins them, and
    refuses them with 413 once past the limit."""
    service = Service(store_dir, limits=Limits(max_body_bytes=200))
    _, port = live_server(create_app(service=service))

    def post_chunked(parts):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"POST /v1/solve HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
            try:
                for part in parts:
                    sock.sendall(b"%x\r\n%s\r\n" % (len(part), part))
                    time.sleep(0.02)
                sock.sendall(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass  # a 413 is answered (and the connection closed) before the rest is sent
            reply = b""
            try:
                while chunk := sock.recv(65536):
                    reply += chunk
            except ConnectionResetError:
                pass
        head, _, body = reply.partition(b"\r\n\r\n")
        return int(head.split()[1]), json.loads(body)

    status, body = post_chunked([b'{"puzzle": [[1, 0], ', b'[0, 0]], "plugin": ', b'"countdown"}'])
    assert status == 200 and body["answer"] == 0 and body["verified"] is True
    status, body = post_chunked([b'{"puzzle": [[1, 0], [0, 0]], "plugin": "countdown"'] + [b" " * 60] * 4 + [b"}"])
    assert status == 413 and "limit" in body["error"]
