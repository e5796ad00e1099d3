"""Peak resident memory and images/second of one training pass of batch gathering: the whole
uint8 array in RAM vs :class:`cvae.data.memmap.MemmapImages` over the same cache file.

    python benchmarks/memmap_rss.py --sizes 20000 80000 320000 --dir /tmp/cvae-memmap-bench

For each size N a synthetic cache of N 3x64x64 uint8 images is written straight into the cache
format (``.npy`` + ``.json``, no JPEG decoding). Then one child process per (size, mode) does
what training does to its data: ``in-memory`` reads the array into RAM (``np.load``);
``memmap`` opens the lazy view. Both then take one seeded random permutation in batches of
``--batch``, gather each batch (``images[idx]``) and convert it to float (``to_float``). The
child reports its peak RSS (``VmHWM`` of /proc/self/status), its RSS after the imports (the
baseline) and the seconds of loading and of the pass. The page cache is warm (the file was
just written), unless ``--cold`` asks the kernel to drop the file's cached pages
(``posix_fadvise DONTNEED``) before each child.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SHAPE = (3, 64, 64)


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def write(path: Path, n: int) -> None:
    """``n`` images in the cache format: 256 distinct random images, repeated."""
    from cvae.data.memmap import read_cache, write_cache

    if read_cache(path) is not None:
        return
    block = np.random.default_rng(0).integers(0, 256, (256, *SHAPE), dtype=np.uint8)
    write_cache(path, SHAPE, n, (block[i % 256] for i in range(n)), {"count": n})


def child(mode: str, path: Path, batch: int) -> dict[str, float]:
    """One pass of batch gathering; what it measured."""
    import torch

    from cvae.data import to_float
    from cvae.data.memmap import MemmapImages

    torch.set_num_threads(1)
    baseline = _status_kib("VmRSS")
    t0 = time.perf_counter()
    in_memory = mode == "in-memory"
    images = torch.from_numpy(np.load(path)) if in_memory else MemmapImages.open(path)
    t1 = time.perf_counter()
    n = len(images)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    checksum = 0.0
    for start in range(0, n, batch):
        x = to_float(images[perm[start : start + batch]])
        checksum += float(x[:, 0, 0, 0].sum())
    t2 = time.perf_counter()
    return {
        "baseline_mib": baseline / 1024,
        "peak_mib": _status_kib("VmHWM") / 1024,
        "load_s": t1 - t0,
        "pass_s": t2 - t1,
        "images_per_s": n / (t2 - t1),
        "checksum": checksum,
    }


def _drop_cached_pages(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 80_000, 320_000])
    parser.add_argument("--dir", type=Path, default=Path("/tmp/cvae-memmap-bench"))
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--cold", action="store_true", help="drop the file's cached pages first")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], Path(args.child[1]), args.batch)))
        return
    gib = np.prod(SHAPE) / 2**30
    print("| images (3x64x64) | uint8 GiB | mode | baseline RSS MiB | peak RSS MiB "
          "| load s | pass s | images/s |")  # fmt: skip
    print("|---:|---:|---|---:|---:|---:|---:|---:|")
    for n in args.sizes:
        path = args.dir / f"synthetic-{n}.npy"
        write(path, n)
        sums = set()
        for mode in ("in-memory", "memmap"):
            if args.cold:
                _drop_cached_pages(path)
            cmd = [sys.executable, __file__, "--child", mode, str(path), "--batch", str(args.batch)]
            out = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
            sums.add(out["checksum"])
            print(f"| {n} | {n * gib:.2f} | {mode} | {out['baseline_mib']:.0f} "
                  f"| {out['peak_mib']:.0f} | {out['load_s']:.2f} | {out['pass_s']:.2f} "
                  f"| {out['images_per_s']:.0f} |", flush=True)  # fmt: skip
        if len(sums) != 1:
            sys.exit(f"{path}: the two modes gathered different images")


if __name__ == "__main__":
    main()
