"""Would a second fingerprint per file find letterboxed and cropped copies? A design probe.

LBPH is a global hash: black bars (letterbox) move it by 28 bits median and a 15 % crop by
54, beyond any radius that keeps distinct photos apart (docs/accuracy.md §1). This probe
measures two ways to give a file a second code, on the real photos of `../shared/corpus`,
without changing the product:

* **content box**: trim the uniform rows and columns at each edge (bars of any colour, frames)
  and hash what is left. Reported per transform of `bench/transforms.py`: the distance
  between the trimmed codes of copy and original, beside the plain codes' distance; and the
  closest pair of distinct originals by trimmed codes.
* **sub-window codes**: hash fixed windows of the original (the four corners and the centre,
  at 85 % and 70 % of each side) and match a copy's whole code against them. Reported for
  crops of 5-30 % from three positions, so that a window size that merely equals the
  benchmark's crop (15 %, 30 %) shows as such.

Usage: `python bench/reframe_probe.py [--corpus DIR] [--every K] [--quick]` (every K-th photo; 1 = all
369, ~4 min here). Prints a human table, then one JSON line.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import base_parser, check_corpus, list_images, machine  # noqa: E402
from transforms import TRANSFORMS, jpeg  # noqa: E402

from dedupd.kernels.contentbox import content_box  # noqa: E402
from dedupd.kernels.lbph import lbph  # noqa: E402

WINDOW_SIDES = (0.85, 0.70)
CROPS = (5, 10, 15, 20, 25, 30)
POSITIONS = ("top-right", "bottom-left", "centre")


def distance(a: np.ndarray, b: np.ndarray) -> int:
    return int(sum(bin(int(x) ^ int(y)).count("1") for x, y in zip(a, b)))


def grey(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)


def in_box(g: np.ndarray) -> np.ndarray:
    """`g` cut to its content box (`dedupd.kernels.contentbox`, the rule this probe measured:
    edge lines whose 2nd-98th percentile spread is <= 6 grey levels, at most a third per
    side, nothing below 2 %), or `g` itself when it has no bars."""
    box = content_box(g)
    return g if box is None else np.ascontiguousarray(box.crop(g))


def windows(g: np.ndarray, side: float) -> list[np.ndarray]:
    h, w = g.shape
    wh, ww = round(h * side), round(w * side)
    y, x = (h - wh) // 2, (w - ww) // 2
    return [g[:wh, :ww], g[:wh, w - ww:], g[h - wh:, :ww], g[h - wh:, w - ww:], g[y:y + wh, x:x + ww]]


def crop(img: np.ndarray, pct: int, position: str) -> np.ndarray:
    h, w = img.shape[:2]
    hh, ww = round(h * (1 - pct / 100)), round(w * (1 - pct / 100))
    y, x = {"top-right": (0, w - ww), "bottom-left": (h - hh, 0), "centre": ((h - hh) // 2, (w - ww) // 2)}[position]
    return img[y:y + hh, x:x + ww]


def share(values: list[int], radius: int) -> float:
    return float(np.mean(np.asarray(values) <= radius))


def main() -> None:
    ap = base_parser(__doc__.split("\n\n")[0])
    ap.add_argument("--every", type=int, default=1, help="every K-th photo (1 = all)")
    args = ap.parse_args()
    photos = list_images(check_corpus(args.corpus) / "photos")[:: 12 if args.quick else args.every]
    plain: dict[str, list[int]] = {t.name: [] for t in TRANSFORMS}
    boxed: dict[str, list[int]] = {t.name: [] for t in TRANSFORMS}
    cropped: dict[tuple[int, str], list[int]] = {}
    originals, boxed_originals, window_codes = [], [], []
    for path in photos:
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            continue
        g = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        code, code_boxed = lbph(g), lbph(in_box(g))
        wins = [lbph(x) for side in WINDOW_SIDES for x in windows(g, side)]
        originals.append(code), boxed_originals.append(code_boxed), window_codes.append(wins)
        for t in TRANSFORMS:
            c = grey(t.fn(img)[0])
            plain[t.name].append(distance(lbph(c), code))
            boxed[t.name].append(distance(lbph(in_box(c)), code_boxed))
        for pct in CROPS:
            for pos in POSITIONS:
                c = lbph(grey(jpeg(crop(img, pct, pos))))
                cropped.setdefault((pct, pos), []).append(min(distance(c, x) for x in [code, *wins]))
    n = len(originals)
    distinct_boxed = min(distance(boxed_originals[i], boxed_originals[j]) for i in range(n) for j in range(i + 1, n))
    distinct_windows = min(distance(originals[j], x) for i in range(n) for j in range(n) if i != j for x in window_codes[i])

    print(f"{n} originals; closest distinct pair: trimmed codes {distinct_boxed} bits, "
          f"a whole code vs another photo's windows {distinct_windows} bits\n")
    print(f"{'transform':<12} {'tier':<7} {'plain p50/p90':>14} {'<=24':>6} {'<=28':>6} {'trimmed p50/p90':>16} {'<=24':>6} {'<=28':>6} {'either <=28':>12}")
    rows = []
    for t in TRANSFORMS:
        a, b = plain[t.name], boxed[t.name]
        row = {"transform": t.name, "tier": t.expect, "plain_p50": float(np.median(a)), "plain_p90": float(np.percentile(a, 90)),
               "plain_le24": share(a, 24), "plain_le28": share(a, 28), "boxed_p50": float(np.median(b)),
               "boxed_p90": float(np.percentile(b, 90)), "boxed_le24": share(b, 24), "boxed_le28": share(b, 28),
               "either_le28": share([min(x, y) for x, y in zip(a, b)], 28)}
        rows.append(row)
        print(f"{t.name:<12} {t.expect:<7} {row['plain_p50']:>6.0f}/{row['plain_p90']:<7.0f} {row['plain_le24']:>6.3f} "
              f"{row['plain_le28']:>6.3f} {row['boxed_p50']:>8.0f}/{row['boxed_p90']:<7.0f} {row['boxed_le24']:>6.3f} {row['boxed_le28']:>6.3f} "
              f"{row['either_le28']:>12.3f}")
    print(f"\n{'crop':>5} {'kept part':<12} {'best of whole + 10 windows: p50':>32} {'<=20':>6} {'<=28':>6}")
    crop_rows = []
    for (pct, pos), v in sorted(cropped.items()):
        crop_rows.append({"crop_pct": pct, "position": pos, "p50": float(np.median(v)), "le20": share(v, 20), "le28": share(v, 28)})
        print(f"{pct:>4}% {pos:<12} {np.median(v):>32.0f} {share(v, 20):>6.2f} {share(v, 28):>6.2f}")
    print(json.dumps({"bench": "reframe_probe", "machine": machine(), "originals": n, "distinct_min_trimmed": distinct_boxed,
                      "distinct_min_windows": distinct_windows, "transforms": rows, "crops": crop_rows}))


if __name__ == "__main__":
    main()
