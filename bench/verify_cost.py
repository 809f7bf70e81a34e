"""What the pixel verification adds to a full scan.

A library where a tenth of the photos have a copy: every photo of the corpus plus, for a
seeded 10 % of them, one copy (JPEG q75 re-encode, 50 % resize, WebP or 3 % trim, in
turn). Full first scans of it (fresh index each time) with verification as shipped and
with `check_pair` replaced by a no-op that verifies nothing, interleaved, medians.

    python bench/verify_cost.py [--corpus PATH] [--repeats 5] [--quick]
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from transforms import BY_NAME, load_original  # noqa: E402

import dedupd.daemon.scan as scan_module  # noqa: E402
from dedupd.daemon.config import parse_config  # noqa: E402
from dedupd.daemon.scan import Scanner  # noqa: E402
from dedupd.daemon.state import open_index  # noqa: E402
from dedupd.kernels import warm  # noqa: E402

COPY_KINDS = ("jpeg_q75", "resize_50", "webp", "trim_3")


def build_library(corpus: Path, root: Path, limit: int | None) -> tuple[int, int]:
    photos = common.list_images(corpus / "photos")[:limit]
    for p in photos:
        shutil.copyfile(p, root / Path(p).name)
    with_copy = common.sample(photos, max(1, len(photos) // 10))
    for i, p in enumerate(with_copy):
        data, ext = BY_NAME[COPY_KINDS[i % len(COPY_KINDS)]].fn(load_original(p))
        (root / f"copy_{i:03d}{ext}").write_bytes(data)
    return len(photos), len(with_copy)


def full_scan(root: Path, state: Path, verify: bool) -> dict:
    shutil.rmtree(state, ignore_errors=True)
    config = parse_config(f"state_dir: {state}\nroots: [{{path: {root}}}]\nworkers: 2\n")
    original = scan_module.check_pair
    if not verify:
        scan_module.check_pair = lambda *args: False
    try:
        with open_index(config) as index:
            report = Scanner(config, index, progress=False).run()
    finally:
        scan_module.check_pair = original
    return report.to_json()


def main() -> None:
    p = common.base_parser(__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    corpus = common.check_corpus(args.corpus)
    warm()
    with tempfile.TemporaryDirectory() as tmp:
        root, state = Path(tmp) / "library", Path(tmp) / "state"
        root.mkdir()
        photos, copies = build_library(corpus, root, 80 if args.quick else None)
        common.warm_page_cache(str(f) for f in root.iterdir())
        reports = {}

        def case(verify):
            def run():
                reports[verify] = full_scan(root, state, verify)
            return run

        times = common.interleaved({"with verification": case(True), "without": case(False)},
                                   2 if args.quick else args.repeats)
    with_v, without = common.median(times["with verification"]), common.median(times["without"])
    ratios = [a / b for a, b in zip(times["with verification"], times["without"])]
    common.print_table(
        ["scan", "median s", "pairs verified"],
        [["with verification", with_v, reports[True]["verified"]], ["without", without, 0]],
        title=f"full scan of {photos} photos + {copies} copies (2 workers)",
    )
    print(f"verification adds {100 * (common.median(ratios) - 1):.1f} % (median of per-round ratios)")
    common.emit_json({"bench": "verify_cost", "machine": common.machine(), "photos": photos, "copies": copies,
                      "seconds_with": times["with verification"], "seconds_without": times["without"],
                      "median_with": with_v, "median_without": without, "overhead": common.median(ratios) - 1,
                      "pairs_verified": reports[True]["verified"]})


if __name__ == "__main__":
    main()
