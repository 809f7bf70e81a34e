"""Human-readable text for dedupctl's outputs (the --json forms are the contracts)."""

from __future__ import annotations

import time


def size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def scan_report(r) -> str:
    lines = [
        f"scanned {r.seen} file(s) in {r.seconds:.1f} s: {r.fingerprinted} fingerprinted, {r.unchanged} unchanged, "
        f"{r.renamed} renamed, {r.linked} hard-linked, {r.removed} removed",
        f"{r.groups} group(s) of near-duplicates; {r.edges} new near pair(s)",
    ]
    if r.errors:
        lines.append("problems: " + ", ".join(f"{k} {v}" for k, v in sorted(r.errors.items())))
    if r.skipped:
        lines.append("passed over: " + ", ".join(f"{k} {v}" for k, v in sorted(r.skipped.items())))
    for root in r.unavailable:
        lines.append(f"unavailable (left as indexed): {root}")
    return "\n".join(lines)


def groups(gs: list[dict]) -> str:
    if not gs:
        return "no groups"
    out = []
    for g in gs:
        out.append(f"group {g['id']}  keep {g['keep']}")
        for m in g["members"]:
            mark = "verified" if m["verified"] else ""
            out.append(f"  {m['tier']:<6} d={m['distance']:<3} {m['variant']:<10} {m['path']} {mark}".rstrip())
    return "\n".join(out)


def matches(hits: list[dict]) -> str:
    if not hits:
        return "no indexed image is near this file"
    return "\n".join(
        f"d={h['distance']:<3} {h['variant']:<10} {h['tier']:<6} {h['path']}"
        + ("  verified" if h["verified"] else "") + ("  (this file)" if h["same_file"] else "")
        for h in hits
    )


def status(s: dict) -> str:
    last = s.get("last_scan") or {}
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(last["finished"])) if last.get("finished") else "never"
    daemon = s.get("daemon") or {}
    roots = "\n".join(
        f"  {r['path']}  mode {r['mode']}{' (DESTRUCTIVE)' if r['destructive'] else ' (report only)'}"
        + (f", watch {r['watch']}" if "watch" in r else "")
        for r in s["roots"]
    ) or "  (none)"
    tiers = s["members_by_tier"]
    rec = s["reclaimable_bytes"]
    acts = s.get("actions") or {}
    not_done = acts.get("not_done_by_reason") or {}
    lines = [
        "daemon           " + (_daemon_line(daemon) if daemon.get("running") else f"NOT RUNNING ({daemon.get('detail', 'no control socket')}); answers below come from the index"),
        f"config           {s['config']}",
        f"roots\n{roots}",
        f"files indexed    {s['files_indexed']}",
        "images by format " + (", ".join(f"{k} {v}" for k, v in s["images_by_format"].items()) or "none"),
        f"groups           {s['groups']}  (members: exact {tiers['exact']}, act {tiers['act']}, report {tiers['report']})",
        f"reclaimable      {size(rec['total'])} if every root were destructive (exact {size(rec['exact'])}, act {size(rec['act'])})",
        f"quarantine       {size(acts.get('pending_bytes', 0))} pending in {acts.get('quarantine_entries', 0)} entr(ies) (undoable; freed when purged)",
        f"reclaimed        {size(acts.get('reclaimed_bytes', 0))} (quarantine purged)",
        "not acted on     " + (", ".join(f"{k} {v}" for k, v in sorted(not_done.items())) or "none"),
        "decode errors    " + (", ".join(f"{k} {v}" for k, v in s["decode_errors_by_kind"].items()) or "none"),
        f"index size       {size(s['index'].get('file_bytes', 0))}",
        f"last scan        {when}" + (f" ({last.get('seen', 0)} files, {last.get('seconds', 0):.1f} s)" if last else ""),
        "last full scan   " + _full_scan_line(s.get("last_full_scan") or {}),
    ]
    return "\n".join(lines)


def _full_scan_line(full: dict) -> str:
    if not full.get("finished"):
        return "never"
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(full["finished"]))
    passed = ", ".join(f"{k} {v}" for k, v in sorted((full.get("skipped") or {}).items()))
    return f"{when} ({full.get('seen', 0)} files" + (f"; passed over: {passed}" if passed else "") + ")"


def _daemon_line(d: dict) -> str:
    up = int(d.get("uptime_seconds", 0))
    state = "PAUSED" if d.get("paused") else "running"
    line = f"{state}, pid {d.get('pid')}, up {up // 3600}h{up % 3600 // 60:02d}m, queue {d.get('queue_depth', 0)}"
    line += f", busy: {d['busy']}" if d.get("busy") else ", idle"
    return line + (f"\n  PROBLEM: {d['problem']}" if d.get("problem") else "")


def schema(spec, where: str = "", depth: int = 0) -> str:
    lines = []
    for key, f in spec.fields.items():
        path = f"{where}.{key}" if where else key
        extra = f" one of: {', '.join(f.choices)}." if f.choices else ""
        default = "" if f.kind == "record" else f" Default: {f.default!r}."
        lines.append(f"{'  ' * depth}{path} ({f.kind}): {f.doc}{extra}{default}")
        sub = f.fields or (f.item.fields if f.item is not None else {})
        if sub:
            lines.append(schema(f if f.fields else f.item, path + ("[]" if f.item is not None else ""), depth + 1))
    return "\n".join(lines)
