"""Mazes: perfect mazes on an N x N grid (walls included) with start S and goal G.

A perfect maze of k x k cells drawn on a (2k+1) x (2k+1) grid has exactly one simple path
between any two cells, so the shortest S->G path is unique and is the label. Grid codes:
input ``0`` wall, ``1`` open, ``2`` S, ``3`` G; label ``0`` wall, ``1`` open, ``2`` on path.
"""

from __future__ import annotations

from collections import deque

import numpy as np

WALL, OPEN, START, GOAL = 0, 1, 2, 3
PATH = 2
CHARS = {"#": WALL, " ": OPEN, ".": OPEN, "S": START, "G": GOAL}
_DIRS = ((0, 1), (1, 0), (0, -1), (-1, 0))


def make_maze(size: int, rng: np.random.Generator) -> np.ndarray:
    """A random perfect maze grid (odd ``size`` >= 5) of WALL/OPEN, by randomized DFS."""
    if size < 5 or size % 2 == 0:
        raise ValueError(f"maze size must be odd and >= 5, got {size}")
    k = size // 2
    g = np.zeros((size, size), dtype=np.int64)
    seen = np.zeros((k, k), dtype=bool)
    start = (int(rng.integers(k)), int(rng.integers(k)))
    stack = [start]
    seen[start] = True
    g[2 * start[0] + 1, 2 * start[1] + 1] = OPEN
    while stack:
        r, c = stack[-1]
        nbrs = [(r + dr, c + dc) for dr, dc in _DIRS if 0 <= r + dr < k and 0 <= c + dc < k and not seen[r + dr, c + dc]]
        if not nbrs:
            stack.pop()
            continue
        nr, nc = nbrs[int(rng.integers(len(nbrs)))]
        seen[nr, nc] = True
        g[2 * nr + 1, 2 * nc + 1] = OPEN
        g[r + nr + 1, c + nc + 1] = OPEN
        stack.append((nr, nc))
    return g


def bfs(grid: np.ndarray, src: tuple[int, int]) -> np.ndarray:
    """Distances (in moves) from ``src`` over non-wall cells; -1 where unreachable."""
    n, m = grid.shape
    dist = np.full((n, m), -1, dtype=np.int64)
    dist[src] = 0
    q = deque([src])
    while q:
        r, c = q.popleft()
        for dr, dc in _DIRS:
            nr, nc = r + dr, c + dc
            if 0 <= nr < n and 0 <= nc < m and grid[nr, nc] != WALL and dist[nr, nc] < 0:
                dist[nr, nc] = dist[r, c] + 1
                q.append((nr, nc))
    return dist


def find(grid: np.ndarray, code: int) -> tuple[int, int]:
    pos = np.argwhere(np.asarray(grid) == code)
    if len(pos) != 1:
        raise ValueError(f"maze must contain exactly one {'S' if code == START else 'G'}, found {len(pos)}")
    return int(pos[0][0]), int(pos[0][1])


def shortest_path_mask(grid: np.ndarray) -> np.ndarray:
    """Boolean mask of the cells on one shortest S->G path (the unique one in perfect mazes)."""
    s, g = find(grid, START), find(grid, GOAL)
    ds, dg = bfs(grid, s), bfs(grid, g)
    d = ds[g]
    if d < 0:
        raise ValueError("maze has no path from S to G")
    on = (ds >= 0) & (dg >= 0) & (ds + dg == d)
    if on.sum() != d + 1:  # several shortest paths: walk back one of them
        mask = np.zeros_like(on)
        cur = g
        mask[cur] = True
        while cur != s:
            r, c = cur
            for dr, dc in _DIRS:
                nr, nc = r + dr, c + dc
                if 0 <= nr < grid.shape[0] and 0 <= nc < grid.shape[1] and ds[nr, nc] == ds[cur] - 1 and on[nr, nc]:
                    cur = (nr, nc)
                    break
            mask[cur] = True
        on = mask
    return on


def make_puzzle(size: int, rng: np.random.Generator, min_dist: int | None = None,
                anywhere: bool = False, distance: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(input grid with S/G, label grid with the path) for a random maze.

    By default S and G sit on cell centres at least ``min_dist`` (default ``size // 2``) moves
    apart. ``anywhere=True`` puts them on any two distinct open cells (centres and corridors,
    adjacent included), uniformly, or with their distance in moves within ``distance`` (lo, hi)
    when given (a new maze is drawn when one has no such pair).
    """
    if not anywhere:
        g = make_maze(size, rng)
        k = size // 2
        if min_dist is None:
            min_dist = k  # avoid trivial neighbours
        while True:
            a, b = rng.integers(k, size=2), rng.integers(k, size=2)
            s = (2 * int(a[0]) + 1, 2 * int(a[1]) + 1)
            t = (2 * int(b[0]) + 1, 2 * int(b[1]) + 1)
            if s != t and bfs(g, s)[t] >= min_dist:
                break
    else:
        g, s, t = _endpoints_anywhere(size, rng, distance)
    x = g.copy()
    x[s] = START
    x[t] = GOAL
    y = np.where(g == WALL, WALL, OPEN)
    y[shortest_path_mask(x)] = PATH
    return x, y


def _endpoints_anywhere(size: int, rng: np.random.Generator, distance: tuple[int, int] | None
                        ) -> tuple[np.ndarray, tuple[int, int], tuple[int, int]]:
    """(maze, S, G): S uniform over open cells, G uniform over open cells at a distance in
    ``distance`` from S (any other open cell when None)."""
    lo, hi = (1, size * size) if distance is None else (max(1, int(distance[0])), int(distance[1]))
    if hi < lo:
        raise ValueError(f"distance range must have lo <= hi, got {distance}")
    while True:
        g = make_maze(size, rng)
        cells = np.argwhere(g != WALL)
        for _ in range(8):
            s = tuple(int(v) for v in cells[rng.integers(len(cells))])
            d = bfs(g, s)
            ok = np.argwhere((d >= lo) & (d <= hi))
            if len(ok):
                t = tuple(int(v) for v in ok[rng.integers(len(ok))])
                return g, s, t


def distance(grid: np.ndarray) -> int:
    """Moves on a shortest S->G path of a maze input grid (-1 when G is unreachable)."""
    return int(bfs(grid, find(grid, START))[find(grid, GOAL)])


def violations(path: np.ndarray, grid: np.ndarray) -> int:
    """Violated constraints of a proposed path (bool mask, or a label grid where PATH marks it).

    Counts path cells on walls, S or G missing from the path, path cells not connected to S
    through the path, G unreachable along the path, and cells beyond the shortest length.
    0 means a valid shortest S->G path.
    """
    grid = np.asarray(grid)
    p = np.asarray(path)
    mask = p.astype(bool) if p.dtype == bool else p == PATH
    s, g = find(grid, START), find(grid, GOAL)
    bad = int((mask & (grid == WALL)).sum())
    bad += int(not mask[s]) + int(not mask[g])
    walk = np.where(mask & (grid != WALL), OPEN, WALL)
    walk[s] = OPEN
    reach = bfs(walk, s) >= 0
    bad += int((mask & (grid != WALL) & ~reach).sum())
    bad += int(not (reach[g] and mask[g]))
    shortest = int(bfs(grid, s)[g]) + 1
    bad += max(0, int(mask.sum()) - shortest)
    return bad


def violations_batch(answers: np.ndarray, grids: np.ndarray) -> np.ndarray:
    return np.array([violations(a, g) for a, g in zip(answers, grids)], dtype=np.int64)


# --- augmentation -----------------------------------------------------------------------

def random_symmetry(size: int, rng: np.random.Generator) -> dict:
    """One of the 8 dihedral transforms."""
    return {"k": int(rng.integers(4)), "flip": bool(rng.integers(2))}


def apply_symmetry(grid: np.ndarray, sym: dict) -> np.ndarray:
    g = np.asarray(grid)
    if sym["flip"]:
        g = np.flip(g, -1)
    return np.ascontiguousarray(np.rot90(g, sym["k"], axes=(-2, -1)))


def invert_symmetry(grid: np.ndarray, sym: dict) -> np.ndarray:
    g = np.rot90(np.asarray(grid), -sym["k"], axes=(-2, -1))
    if sym["flip"]:
        g = np.flip(g, -1)
    return np.ascontiguousarray(g)


def parse(lines: list[str]) -> np.ndarray:
    """Parse a maze given as equal-length strings of '#', ' ', 'S', 'G'."""
    if isinstance(lines, str) or not isinstance(lines, (list, tuple)) or not lines:
        raise ValueError("maze must be a non-empty list of strings")
    if not all(isinstance(s, str) for s in lines):
        raise ValueError("maze rows must all be strings")
    width = len(lines[0])
    for i, s in enumerate(lines):
        if len(s) != width:
            raise ValueError(f"maze rows must have equal length: row 0 has {width}, row {i} has {len(s)}")
        for ch in s:
            if ch not in CHARS:
                raise ValueError(f"maze row {i} has bad symbol {ch!r}: allowed are '#', ' ', 'S', 'G'")
    g = np.array([[CHARS[ch] for ch in s] for s in lines], dtype=np.int64)
    find(g, START)
    find(g, GOAL)
    return g


def render(grid: np.ndarray, path: np.ndarray | None = None) -> list[str]:
    inv = {WALL: "#", OPEN: " ", START: "S", GOAL: "G"}
    out = []
    for r, row in enumerate(np.asarray(grid)):
        s = ""
        for c, v in enumerate(row):
            ch = inv[int(v)]
            if path is not None and ch == " " and path[r, c]:
                ch = "o"
            s += ch
        out.append(s)
    return out
