"""The natural look-alikes of ../shared/corpus (skipped where the corpus is absent):
different shots of one scene (stereo pairs, adjacent video frames, other viewpoints,
other exposures) must never reach the act tier."""

from __future__ import annotations

import csv
import itertools
import json

from dedupd.daemon.cli import main


def test_no_distinct_shot_pair_is_ever_act(corpus, tmp_path, capsys):
    natural = corpus / "natural"
    config = tmp_path / "dedupd.yaml"
    config.write_text(f"state_dir: {tmp_path / 'state'}\nroots: [{{path: {natural}}}]\nworkers: 2\n")
    assert main(["--config", str(config), "scan", "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["--config", str(config), "groups", "--json"]) == 0
    groups = json.loads(capsys.readouterr().out)["groups"]
    act_pairs = {frozenset((g["keep"], m["path"])) for g in groups for m in g["members"] if m["tier"] in ("act", "exact")}
    rows = list(csv.DictReader(open(natural / "ground_truth.csv")))
    by_group: dict[str, list[dict]] = {}
    for row in rows:
        by_group.setdefault(row["group"], []).append(row)
    distinct = [
        frozenset((str(corpus / a["path"]), str(corpus / b["path"])))
        for members in by_group.values()
        for a, b in itertools.combinations(members, 2)
        if "distinct_shot" in (a["copy_relation"], b["copy_relation"])
    ]
    assert len(distinct) > 100
    violations = [sorted(p) for p in distinct if p in act_pairs]
    assert violations == []
    assert act_pairs, "some true copies in the natural set are expected in the act tier"
