"""Write a CIFAR-10 python-pickle copy (``cifar-10-batches-py``) of a CIFAR-10 image folder.

The reference CVAE code reads CIFAR-10 only through torchvision's pickle batches, and no pickle
copy is provided here: this script writes one from the class folders of the 50,000 training
JPEGs (``../shared/data/cifar10-train``), so that ``benchmarks/side_by_side.py --preset
cvae-cifar10-paper`` can time the reference's CIFAR-10 path next to ours. Layout and keys are the
canonical ones as ``peer_bench.py`` expects its ``PEER_CIFAR`` copy: ``data_batch_1..5`` (10,000
images each, in folder order shuffled by ``--seed``), ``batches.meta`` and ``test_batch``, with
bytes keys (``b'data'``: uint8 N x 3072 in CHW order, ``b'labels'``). There is no official test
split here: ``test_batch`` repeats the first 10,000 training images, so the copy is for timing
only, never for scoring.

    python benchmarks/cifar_pickle.py --out /tmp/cifar-pickle
    PEER_CIFAR=/tmp/cifar-pickle python benchmarks/side_by_side.py --preset cvae-cifar10-paper
"""

from __future__ import annotations

import argparse
import pickle
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
FOLDER = ROOT.parent / "shared" / "data" / "cifar10-train"
PER_BATCH = 10_000


def read_folder(root: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """All images of the class folders under ``root`` as (N x 3072 uint8 CHW rows, labels,
    class names in sorted order)."""
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    rows, labels = [], []
    for label, name in enumerate(classes):
        for path in sorted((root / name).glob("*.jpg")):
            with Image.open(path) as im:
                rows.append(np.asarray(im.convert("RGB"), dtype=np.uint8).transpose(2, 0, 1))
            labels.append(label)
    return np.stack(rows).reshape(len(rows), -1), np.asarray(labels), classes


def dump(path: Path, obj: dict[bytes, object]) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        pickle.dump(obj, f, protocol=2)
    tmp.replace(path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--folder", type=Path, default=FOLDER)
    p.add_argument("--out", type=Path, required=True, help="folder to write the batches into")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    data, labels, classes = read_folder(args.folder)
    order = np.random.default_rng(args.seed).permutation(len(data))
    data, labels = data[order], labels[order]
    args.out.mkdir(parents=True, exist_ok=True)
    for i in range(5):
        part = slice(i * PER_BATCH, (i + 1) * PER_BATCH)
        dump(args.out / f"data_batch_{i + 1}",
             {b"data": data[part], b"labels": labels[part].tolist(),
              b"batch_label": f"training batch {i + 1} of 5".encode()})  # fmt: skip
    dump(args.out / "test_batch",
         {b"data": data[:PER_BATCH], b"labels": labels[:PER_BATCH].tolist(),
          b"batch_label": b"copy of training batch 1 (timing only)"})  # fmt: skip
    dump(args.out / "batches.meta",
         {b"label_names": [c.encode() for c in classes], b"num_cases_per_batch": PER_BATCH,
          b"num_vis": 3072})  # fmt: skip
    print(f"{len(data)} images, {len(classes)} classes -> {args.out}")


if __name__ == "__main__":
    main()
