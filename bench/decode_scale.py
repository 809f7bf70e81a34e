"""How far a JPEG's DCT-domain reduced decode is from an area-downscaled full decode.

The daemon decodes a JPEG at 1/2, 1/4 or 1/8 scale (daemon/decode.py); the pixel
verification then compares thumbnails of such decodes. For every JPEG of the corpus and
each reduction, the reduced grey decode is compared with the full grey decode area-resized
to the same size: per file, the 99th percentile and the mean of |difference| (grey levels),
split by whether the reduced image keeps a short side >= MIN_SIDE (the daemon's rule; below
it the daemon would not pick that reduction). Medians over files are reported; the max of a
file is not, because the last partial 8x8 block row/column of a size that is not a multiple
of 8 differs by up to ~150 grey levels in most files (edge handling, not texture).

Run:  /tmp/venv/bin/python bench/decode_scale.py [--corpus PATH]
"""

from __future__ import annotations

import cv2
import numpy as np

import common
from common import median, percentile, print_table, rounded

REDUCED = {2: cv2.IMREAD_REDUCED_GRAYSCALE_2, 4: cv2.IMREAD_REDUCED_GRAYSCALE_4, 8: cv2.IMREAD_REDUCED_GRAYSCALE_8}


def measure(paths: list[str], min_side: int) -> dict:
    from dedupd.daemon.imageinfo import HEADER_BYTES, read_info

    rows: dict[tuple[int, bool], list[tuple[float, float]]] = {}
    for p in paths:
        with open(p, "rb") as f:
            data = f.read()
        if read_info(data[:HEADER_BYTES], p).format != "jpeg":
            continue
        buf = np.frombuffer(data, np.uint8)
        full = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE | cv2.IMREAD_IGNORE_ORIENTATION)
        for k, flag in REDUCED.items():
            small = cv2.imdecode(buf, flag | cv2.IMREAD_IGNORE_ORIENTATION)
            if min(small.shape) < 16:
                continue
            ref = cv2.resize(full, (small.shape[1], small.shape[0]), interpolation=cv2.INTER_AREA)
            d = np.abs(small.astype(np.int16) - ref.astype(np.int16))
            rows.setdefault((k, min(small.shape) >= min_side), []).append((float(np.percentile(d, 99)), float(d.mean())))
    return {f"1/{k} {'>=' if kept else '<'}{min_side}": {
        "files": len(v), "p99_median": rounded(median([a for a, _ in v])), "p99_p95": rounded(percentile([a for a, _ in v], 95)),
        "mean_median": rounded(median([b for _, b in v]))} for (k, kept), v in sorted(rows.items())}


def main(argv=None) -> int:
    from dedupd.daemon.decode import MIN_SIDE

    args = common.base_parser(__doc__).parse_args(argv)
    corpus = common.check_corpus(args.corpus)
    out = measure(common.list_images(corpus / "photos"), MIN_SIDE)
    print_table(["reduction, short side", "files", "p99 |d| (median over files)", "p99 |d| (p95 over files)",
                 "mean |d| (median)"],
                [[k, v["files"], v["p99_median"], v["p99_p95"], v["mean_median"]] for k, v in out.items()],
                title="reduced JPEG decode vs area-downscaled full decode, grey levels")
    common.emit_json({"bench": "decode_scale", "min_side": MIN_SIDE, "results": out, "machine": common.machine()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
