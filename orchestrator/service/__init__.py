"""orchestrator.service: request handling shared by ``sage serve``, the MCP server and ``llm`` tools.

How to call it (tools engineer, issue 18)::

    from orchestrator.service import Service, RequestError, parse_solve, parse_puzzle

    svc = Service()                        # or Service(store="DIR"); one per process, close() at exit
    try:
        res = svc.solve({"puzzle": [[1, 0, 0, 4], ...], "mode": "irp", "max_steps": 16},
                        on_step=lambda ev: print(ev.step, ev.energy))  # ev: sage_core.StepEvent
        res.to_dict()   # {"session", "plugin", "answer", "energy", "verified", "segments", "reason", ..., "read"}
        # an image instead: svc.solve({"image": BASE64_PNG}) reads it with the vision plugin first (res.read)
    except RequestError as err:
        err.to_dict()   # {"error": "...", "field": "puzzle[1][2]", "status": 422}; err.status: 413/422/404/409/503

    # async (MCP handlers): await svc.solver.solve_async(parse_solve(body), on_step=..., cancel=CancelToken())
    # pipeline runs: run_id = svc.runs.start(parse_run({"pipeline": "toy_chain"} or {"toml": TEXT, "inputs": {...}}))
    #   svc.runs.status(run_id); svc.runs.events(run_id, after=0, timeout=1.0); svc.runs.cancel(run_id);
    #   svc.runs.resume(run_id); svc.runs.pipelines(); svc.plugins(); svc.sessions()

Every refusal is a :class:`RequestError` with an HTTP ``status``, the JSON ``field`` at fault and a
message a person can act on; never let another exception out of a tool for bad input.
"""

from ._errors import Cancelled, RequestError
from ._limits import Limits
from ._requests import (MODES, Puzzle, RunRequest, SolveRequest, parse_image, parse_int, parse_json, parse_puzzle,
                        parse_run, parse_solve)
from ._runs import RunManager
from ._service import Service, default_pipelines_dir
from ._solver import CancelToken, ProgressCallback, Solver, SolveResult, jsonable

__all__ = [
    "MODES", "CancelToken", "Cancelled", "Limits", "ProgressCallback", "Puzzle", "RequestError", "RunManager",
    "RunRequest", "Service", "SolveRequest", "SolveResult", "Solver", "default_pipelines_dir", "jsonable",
    "parse_image", "parse_int", "parse_json", "parse_puzzle", "parse_run", "parse_solve",
]
