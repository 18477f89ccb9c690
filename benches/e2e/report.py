#!/usr/bin/env python3
"""Formats the raw measurements of benches/e2e.sh as a markdown report.

Input: a results file of `key<TAB>value` lines, one per run, where value is a number
(seconds, KiB or bytes, by the key's prefix) or `!message` for a run that failed; a meta
file of `key<TAB>value` lines (machine, date, image, ...); a commands file (markdown,
copied verbatim). Output: markdown on stdout, medians per measurement and the ratio per
pair against the target from issue 7.
"""

import argparse
import statistics
import sys


def load_results(path):
    """Returns {key: ([numbers], [error messages])} in file order."""
    results = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line or "\t" not in line:
                continue
            key, value = line.split("\t", 1)
            nums, errs = results.setdefault(key, ([], []))
            if value.startswith("!"):
                errs.append(value[1:].strip() or "failed")
            else:
                try:
                    nums.append(float(value))
                except ValueError:
                    errs.append(f"unparsable value {value!r}")
    return results


def load_meta(path):
    meta = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if "\t" in line:
                meta.append(tuple(line.split("\t", 1)))
    return meta


class Notes:
    """Footnotes for failed runs, numbered in order of first use."""

    def __init__(self):
        self.items = []

    def ref(self, text):
        if text not in self.items:
            self.items.append(text)
        return f"[^{self.items.index(text) + 1}]"


def fmt_value(kind, v):
    if kind == "s":
        return f"{v:.2f} s"
    if kind == "rss":
        return f"{v / 1024:.1f} MiB"
    if kind == "bytes":
        return human_bytes(v)
    return f"{v:g}"


def human_bytes(n):
    n = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def median_of(results, key):
    nums, errs = results.get(key, ([], []))
    return (statistics.median(nums) if nums else None), errs


def cell(results, key, kind, notes):
    """Median cell text for `key`, with a footnote if any run of it failed."""
    med, errs = median_of(results, key)
    if med is None and not errs:
        return "n/a", None
    text = fmt_value(kind, med) if med is not None else "failed"
    if errs:
        nums = results[key][0]
        msg = f"`{key}`: {len(errs)} of {len(errs) + len(nums)} runs failed: {errs[0]}"
        text += " " + notes.ref(msg)
    return text, med


# (label, dist key, peer key, peer label, kind, target ratio or None)
PAIRS = [
    ("cold pull, native snapshotter", "time.dist_native", "time.ctr_native",
     "`ctr images pull --snapshotter native`", "s", 0.25),
    ("cold pull, overlay snapshotter", "time.dist_overlay", "time.ctr_overlay",
     "`ctr images pull --snapshotter overlayfs`", "s", 0.25),
    ("pull + unpack to a directory", "time.dist_unpack", "time.skopeo_umoci",
     "`skopeo copy` + `umoci unpack`", "s", 0.25),
    ("warm re-pull, native", "time.dist_warm_native", "time.ctr_warm_native",
     "`ctr images pull` again (native)", "s", 0.5),
    ("warm re-pull, overlay", "time.dist_warm_overlay", "time.ctr_warm_overlay",
     "`ctr images pull` again (overlayfs)", "s", 0.5),
    ("peak RSS, cold pull native", "rss.dist_native", "rss.ctr_native",
     "containerd daemon + ctr", "rss", None),
    ("peak RSS, cold pull overlay", "rss.dist_overlay", "rss.ctr_overlay",
     "containerd daemon + ctr", "rss", None),
    ("peak RSS, pull + unpack (max of the two steps)", "rss.dist_unpack",
     "rss.skopeo_umoci", "max(skopeo, umoci)", "rss", None),
    ("import of an OCI archive, unpacked", "time.dist_import", "time.ctr_import",
     "`ctr images import` (unpacks)", "s", 0.3),
    ("import of an OCI archive, unpacked", "time.dist_import", "time.skopeo_umoci_import",
     "`skopeo copy oci-archive:` + `umoci unpack`", "s", 0.3),
    ("export to an archive", "time.dist_export", "time.ctr_export",
     "`ctr images export`", "s", 1.0),
    ("export to an archive, vs the floor", "time.dist_export", "time.tar_floor",
     "`tar -cf` of the same blobs", "s", 1.2),
    ("peak RSS, import --unpack", "rss.dist_import", "rss.none", "–", "rss", None),
    ("peak RSS, export", "rss.dist_export", "rss.none", "–", "rss", None),
    ("blob bytes served on warm re-pull, native", "bytes.dist_warm_native",
     "bytes.ctr_warm_native", "ctr (registry access log)", "bytes", None),
    ("blob bytes served on warm re-pull, overlay", "bytes.dist_warm_overlay",
     "bytes.ctr_warm_overlay", "ctr (registry access log)", "bytes", None),
    ("push to an empty registry, vs the raw-upload floor", "time.dist_push",
     "time.curl_push", "curl POST + parallel monolithic PUTs (`benches/e2e/curl_push.sh`)",
     "s", 1.2),
    ("push to an empty registry, vs skopeo", "time.dist_push", "time.skopeo_push",
     "`skopeo copy oci:… docker://…`", "s", None),
    ("push to an empty registry, vs containerd", "time.dist_push", "time.ctr_push",
     "`ctr images push`", "s", None),
    ("peak RSS, push", "rss.dist_push", "rss.skopeo_push", "skopeo", "rss", None),
]

REPUSH_LIMIT_S = 0.2

RSS_LIMIT_KIB = 64 * 1024


def verdict(ok):
    if ok is None:
        return "–"
    return "yes" if ok else "**no**"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", required=True)
    ap.add_argument("--meta", required=True)
    ap.add_argument("--commands", required=True)
    args = ap.parse_args()

    results = load_results(args.results)
    meta = load_meta(args.meta)
    notes = Notes()
    out = []
    w = out.append

    w("## End-to-end benchmark (`benches/e2e.sh`)")
    w("")
    for k, v in meta:
        w(f"- {k}: {v}")
    w("")
    w("Medians over the cold runs (each run on a fresh root; runs alternate dist, peer, "
      "dist, peer). Ratio = dist / peer; lower is better.")
    w("")
    w("| measurement | dist | peer | peer tool | ratio | target | met |")
    w("|---|---|---|---|---|---|---|")
    for label, dk, pk, plabel, kind, target in PAIRS:
        if dk not in results and pk not in results:
            continue  # a scenario this run left out (--only)
        dtext, dmed = cell(results, dk, kind, notes)
        ptext, pmed = cell(results, pk, kind, notes)
        ratio = "–"
        if dmed is not None and pmed:
            ratio = f"{dmed / pmed:.2f}x"
        ttext, ok = "–", None
        if target is not None:
            ttext = f"≤ {target}x"
            if dmed is not None and pmed:
                ok = dmed / pmed <= target
        elif kind == "rss":
            ttext = "dist < 64 MiB"
            if dmed is not None:
                ok = dmed < RSS_LIMIT_KIB
        elif kind == "bytes":
            ttext = "dist = 0"
            if dmed is not None:
                nums = results[dk][0]
                ok = max(nums) == 0 if nums else None
        w(f"| {label} | {dtext} | {ptext} | {plabel} | {ratio} | {ttext} | {verdict(ok)} |")

    # Flat RSS: the same pull of an image whose big-file layer is 5x larger.
    btext, bmed = cell(results, "rss.dist_big", "rss", notes)
    atext, amed = cell(results, "rss.dist_native", "rss", notes)
    if bmed is not None or results.get("rss.dist_big"):
        ratio, ok = "–", None
        if bmed is not None and amed:
            ratio = f"{bmed / amed:.2f}x"
            ok = abs(bmed / amed - 1) <= 0.10 and bmed < RSS_LIMIT_KIB
        w(f"| flat RSS: cold pull native, 5x big-file layer vs base image | {btext} | "
          f"{atext} | dist on the base image | {ratio} | within 1.10x, < 64 MiB | "
          f"{verdict(ok)} |")
        ttext, _ = cell(results, "time.dist_big", "s", notes)
        w(f"| (time of that 5x-layer pull, for scale) | {ttext} | | | | | |")
    # Re-push of an image the registry has: an absolute bound, no peer.
    rtext, rmed = cell(results, "time.dist_repush", "s", notes)
    btext, _ = cell(results, "bytes.dist_repush", "bytes", notes)
    if rmed is not None or results.get("time.dist_repush"):
        nums = results.get("bytes.dist_repush", ([], []))[0]
        ok = None
        if rmed is not None and nums:
            ok = rmed < REPUSH_LIMIT_S and max(nums) == 0
        w(f"| re-push of the same image (everything there) | {rtext}, {btext} uploaded | "
          f"| | | < {REPUSH_LIMIT_S} s, 0 B | {verdict(ok)} |")
    w("")

    w("<details><summary>every run</summary>")
    w("")
    w("| key | runs |")
    w("|---|---|")
    for key, (nums, errs) in results.items():
        kind = key.split(".", 1)[0]
        kind = {"time": "s"}.get(kind, kind)
        vals = [fmt_value(kind, v) for v in nums] + [f"failed ({e})" for e in errs]
        w(f"| `{key}` | {' / '.join(vals)} |")
    w("")
    w("</details>")
    w("")

    with open(args.commands, encoding="utf-8") as f:
        w(f.read().rstrip("\n"))
    w("")
    for i, text in enumerate(notes.items, 1):
        w(f"[^{i}]: {text.replace(chr(10), ' ')}")
    sys.stdout.write("\n".join(out).rstrip("\n") + "\n")


if __name__ == "__main__":
    main()
