"""Session store versus raw writes and torch.save/torch.load, same run, same tensors.

For session states of 1 MB, 50 MB and 500 MB (four tensors: float32, bfloat16, int64, float32):

* checkpoint: ``SessionStore.checkpoint`` (safetensors files + checksums + manifest, every
  file and directory fsynced, atomic rename) versus writing the same bytes raw with
  ``numpy.ndarray.tofile`` + ``fsync`` (target: ratio <= 1.5);
* open: ``SessionStore.load`` (manifest, headers, memory-mapped tensors) versus
  ``torch.load(weights_only=True)`` of a ``torch.save`` file of the same tensors
  (target: >= 20x faster);
* open + touch all: the same, then every tensor read and reduced (for the store this reads
  and checksum-verifies every byte) (target: ratio <= 1.0).

Files are in the page cache (written just before), as when a session is resumed on the
machine that wrote it. Writes are interleaved in a shuffled order; median of the repeats.
What a method wrote before is removed (and the removal flushed) untimed, so that no method
pays for freeing another's blocks. Two floors, measured in the same run, show what no
implementation can beat: a checkpoint reduced to the flushes and rename that crash safety
needs, and an open reduced to its system calls and manifest decoding. Usage::

    python bench/persistence.py [--sizes 1,50,500] [--repeats R] [--checksum xxh3_128|crc32|sha256|blake2b] [--dir DIR]
    python -m bench.persistence ...   (from the repository root)
"""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent


def _without_bench(paths: list[str]) -> list[str]:
    return [p for p in paths if Path(p or ".").resolve() != _HERE]


if __name__ == "persistence":
    # This file is named after the package, and a script run from bench/ has bench/ first on
    # sys.path: when such a script imports ``persistence`` (directly or via orchestrator), it
    # gets here. Hand it the real package instead of this benchmark.
    import importlib

    _saved = sys.path[:]
    sys.path[:] = _without_bench(sys.path)
    del sys.modules[__name__]
    try:
        sys.modules[__name__] = importlib.import_module("persistence")
    finally:
        sys.path[:] = _saved
else:
    # Run as ``python bench/persistence.py``: its own directory (sys.path[0]) would shadow the package.
    sys.path[:] = _without_bench(sys.path)

import argparse  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from concurrent.futures import ThreadPoolExecutor  # noqa: E402

import msgpack  # noqa: E402
import torch  # noqa: E402

from persistence import PluginSnapshot, SessionSnapshot, SessionStore, capture_rng_state  # noqa: E402
from persistence._format import CHECKSUMS, DEFAULT_CHECKSUM  # noqa: E402
from persistence._fsutil import wait_for_removals  # noqa: E402


def make_tensors(megabytes: float) -> dict[str, torch.Tensor]:
    total = int(megabytes * 1024 * 1024)
    g = torch.Generator().manual_seed(0)
    return {
        "x": torch.randn(total // 2 // 4, generator=g),
        "carry/z_H": torch.randn(total // 4 // 2, generator=g).to(torch.bfloat16),
        "carry/index": torch.randint(0, 1 << 40, (total // 8 // 8,), generator=g),
        "carry/z_L": torch.randn(total // 8 // 4, generator=g),
    }


def raw_write(tensors: dict[str, torch.Tensor], path: Path) -> float:
    t0 = time.perf_counter()
    with open(path, "wb") as handle:
        for tensor in tensors.values():
            tensor.numpy().tofile(handle) if tensor.dtype != torch.bfloat16 else tensor.view(torch.int16).numpy().tofile(handle)
        handle.flush()
        os.fsync(handle.fileno())
    return time.perf_counter() - t0


_POOL = ThreadPoolExecutor(max_workers=2)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def protocol_floor(tensors: dict[str, torch.Tensor], manifest: bytes, directory: Path, i: int) -> float:
    """The least any crash-safe checkpoint of these bytes costs: write them (as raw does) and a
    manifest-sized second file into a new directory, fsync both files and the directory (at
    once), rename the directory into place, fsync its parent. No checksums, no validation."""
    tmp, final = directory / f".floor-tmp-{i}", directory / f"floor-{i}"
    t0 = time.perf_counter()
    tmp.mkdir()
    with open(tmp / "data", "wb") as handle:
        for tensor in tensors.values():
            tensor.numpy().tofile(handle) if tensor.dtype != torch.bfloat16 else tensor.view(torch.int16).numpy().tofile(handle)
    with open(tmp / "manifest", "wb") as handle:
        handle.write(manifest)
    syncs = [_POOL.submit(_fsync, tmp / "data"), _POOL.submit(_fsync, tmp / "manifest")]
    _fsync(tmp)
    for future in syncs:
        future.result()
    os.rename(tmp, final)
    _fsync(directory)
    return time.perf_counter() - t0


def open_floor(session: Path, manifest: Path, tensor_file: Path) -> float:
    """The least opening a checkpoint costs: list the session directory (which checkpoint is
    newest), read and decode the manifest, stat the tensor file. No checksum, no validation."""
    t0 = time.perf_counter()
    os.listdir(session)
    fd = os.open(manifest, os.O_RDONLY)
    try:
        data = os.read(fd, os.fstat(fd).st_size + 1)
    finally:
        os.close(fd)
    msgpack.unpackb(msgpack.unpackb(data)["body"])
    os.stat(tensor_file)
    return time.perf_counter() - t0


def touch(tensors) -> int:
    """Read every page of every tensor (one byte per 4 KiB page; the store's lookup itself
    reads and checksums every byte)."""
    total = 0
    for key in tensors:
        tensor = tensors[key]
        if tensor.numel():
            total += int(tensor.reshape(-1).view(torch.uint8)[::4096].sum())
    return total


def bench(megabytes: float, repeats: int, checksum: str | None, directory: Path) -> dict[str, float]:
    tensors = make_tensors(megabytes)
    nbytes = sum(t.numel() * t.element_size() for t in tensors.values())
    store = SessionStore(directory / "sessions", keep=2, checksum=checksum)  # prunes, as raw deletes
    sid = store.create()
    snapshot = SessionSnapshot({"hrm": PluginSnapshot("hrm", "1.0.0", 1, tensors, {"step": 3, "energy": 0.5})},
                               {"budget": 100.0}, capture_rng_state())
    pt = directory / "state.pt"
    raw, ckpt, save, opens, loads, open_touch, load_touch = [], [], [], [], [], [], []
    floor, floor_open = [], []
    order = random.Random(0)
    manifest_bytes = 0

    # Each method removes what it wrote before, untimed, then `settle`s: the file system frees
    # (and, mounted with `discard`, trims) the blocks at its next journal commit, which would
    # otherwise land in whichever method's fsync comes next.
    def settle(folder: Path) -> None:
        _fsync(folder)

    def do_raw(i: int) -> None:
        raw.append(raw_write(tensors, directory / f"raw-{i}.bin"))
        if i >= 1:
            (directory / f"raw-{i - 1}.bin").unlink()
            settle(directory)

    def do_ckpt(i: int) -> None:
        t0 = time.perf_counter()
        store.checkpoint(sid, snapshot)
        ckpt.append(time.perf_counter() - t0)
        wait_for_removals()  # the pruned checkpoint, removed in the background: untimed, as raw's unlink
        settle(store.path(sid))

    def do_floor(i: int) -> None:
        floor.append(protocol_floor(tensors, b"m" * max(manifest_bytes, 1), directory, i))
        if i >= 1:
            shutil.rmtree(directory / f"floor-{i - 1}")
            settle(directory)

    def do_save(i: int) -> None:
        t0 = time.perf_counter()
        with open(pt, "wb") as handle:
            torch.save(tensors, handle)
            handle.flush()
            os.fsync(handle.fileno())
        save.append(time.perf_counter() - t0)

    store.checkpoint(sid, snapshot)  # untimed: the manifest's size, for the floor
    wait_for_removals()
    manifest_bytes = (store.path(sid) / f"ckpt-{store.checkpoints(sid)[-1]:08d}" / "manifest.msgpack").stat().st_size
    for i in range(repeats):  # interleaved in a shuffled order: no method always goes first
        steps = [do_raw, do_ckpt, do_save, do_floor]
        order.shuffle(steps)
        for step in steps:
            step(i)
    for _ in range(repeats):
        t0 = time.perf_counter()
        loaded = store.load(sid)
        opens.append(time.perf_counter() - t0)
        del loaded
        t0 = time.perf_counter()
        loaded = store.load(sid)
        touch(loaded.nodes["hrm"].tensors)
        open_touch.append(time.perf_counter() - t0)
        del loaded
        t0 = time.perf_counter()
        state = torch.load(pt, weights_only=True)
        loads.append(time.perf_counter() - t0)
        del state
        t0 = time.perf_counter()
        state = torch.load(pt, weights_only=True)
        touch(state)
        load_touch.append(time.perf_counter() - t0)
        del state
    target = store.path(sid) / f"ckpt-{store.checkpoints(sid)[-1]:08d}"
    for _ in range(repeats):  # the open floor, in the state an open above starts from (after load + touch)
        touch(torch.load(pt, weights_only=True))
        floor_open.append(open_floor(store.path(sid), target / "manifest.msgpack", target / "n000.safetensors"))
    med = statistics.median
    return {"MB": nbytes / 2**20, "raw": med(raw), "ckpt": med(ckpt), "save": med(save), "open": med(opens),
            "load": med(loads), "open_touch": med(open_touch), "load_touch": med(load_touch),
            "floor": med(floor), "floor_open": med(floor_open)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1,50,500", help="state sizes in MB, comma separated")
    parser.add_argument("--repeats", type=int, default=0, help="repeats per size (default: 21 / 9 / 5 by size)")
    parser.add_argument("--checksum", default=None, choices=sorted(CHECKSUMS),
                        help=f"checksum algorithm (default: the store's, here {DEFAULT_CHECKSUM})")
    parser.add_argument("--dir", type=Path, default=None, help="where to write (default: a temp dir in .)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    base = Path(tempfile.mkdtemp(prefix=".bench-persistence-", dir=args.dir or Path.cwd()))
    rows = []
    try:
        for size in [float(s) for s in args.sizes.split(",")]:
            repeats = args.repeats or (21 if size <= 5 else 9 if size <= 100 else 5)
            directory = base / f"{size:g}"
            directory.mkdir()
            rows.append(bench(size, repeats, args.checksum, directory))
            shutil.rmtree(directory)
    finally:
        shutil.rmtree(base, ignore_errors=True)

    def ms(seconds: float) -> str:
        return f"{seconds * 1e3:9.2f}"

    print(f"checksum {args.checksum or DEFAULT_CHECKSUM}; times in ms (median); page cache warm; torch threads 1")
    print(f"{'state':>8} | {'raw+fsync':>9} {'ckpt':>9} {'ratio':>6} {'save':>9} | {'open':>9} {'t.load':>9} "
          f"{'speedup':>8} | {'open+tch':>9} {'load+tch':>9} {'ratio':>6}")
    for r in rows:
        print(f"{r['MB']:6.0f}MB | {ms(r['raw'])} {ms(r['ckpt'])} {r['ckpt'] / r['raw']:6.2f} {ms(r['save'])} | "
              f"{ms(r['open'])} {ms(r['load'])} {r['load'] / r['open']:7.0f}x | "
              f"{ms(r['open_touch'])} {ms(r['load_touch'])} {r['open_touch'] / r['load_touch']:6.2f}")
    print("targets: checkpoint/raw <= 1.5; open >= 20x faster than torch.load; open+touch/load+touch <= 1.0")
    print()
    print("floors, same run: 'ckpt floor' writes the same bytes plus a manifest-sized file with only the steps")
    print("crash safety needs (fsync files + directory, rename, fsync parent; no checksum, no validation);")
    print("'open floor' lists the session, reads and decodes the manifest and stats the tensor file (after a")
    print("torch.load + touch, as the opens above). A ratio below a floor's is out of reach for any implementation.")
    print(f"{'state':>8} | {'ckpt floor':>10} {'floor/raw':>9} {'ckpt/floor':>10} | {'open floor':>10} "
          f"{'t.load/floor':>12} {'open/floor':>10}")
    for r in rows:
        print(f"{r['MB']:6.0f}MB | {ms(r['floor']):>10} {r['floor'] / r['raw']:9.2f} {r['ckpt'] / r['floor']:10.2f} | "
              f"{ms(r['floor_open']):>10} {r['load'] / r['floor_open']:11.0f}x {r['open'] / r['floor_open']:10.2f}")


if __name__ == "__main__":
    main()
