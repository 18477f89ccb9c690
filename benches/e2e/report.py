#!/usr/bin/env python3
"""Formats the raw measurements of benches/e2e.sh as a markdown report.

Input: a results file of `key<TAB>value` lines, one per run, where value is a number
(seconds, KiB or bytes, by the key's prefix) or `!message` for a run that failed; a meta
file of `key<TAB>value` lines (machine, date, image, ...); a commands file (markdown,
copied verbatim). Output: markdown on stdout, medians per measurement and the ratio per
pair against the targets of issues 7 and 17, every pull time also as a ratio to the floor
measured on the same image in the same run. With --scaling, a table of the scaled images
and an SVG plot (--plot) that the markdown links (--plot-link).
"""

import argparse
import html
import os
import re
import statistics
import sys

sys.dont_write_bytecode = True  # no __pycache__ left in the work tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from plot import linear_fit, scaling_svg  # noqa: E402


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
    if kind == "rate":
        return f"{v:.1f} MB/s"
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


FLOOR_LABEL = "the floor: download + inflate + write, no checks"
FLOOR_VERIFY_LABEL = ("the floor + SHA-256 of every blob and tar stream (`--verify`), "
                      "the checks no safe pull skips")
CTR_OVERLAY = "`ctr images pull --snapshotter overlayfs`"

# (label, dist key, peer key, peer label, kind, target ratio or None[, floor key]); the
# floor key names the floor measured on the same image, for the ÷ floor columns.
PAIRS = [
    ("cold pull, default snapshotter (plain `dist pull`), vs the floor", "time.dist_default",
     "time.floor", FLOOR_LABEL, "s", 1.25, "time.floor"),
    ("cold pull, default snapshotter, vs the floor with digest checks", "time.dist_default",
     "time.floor_verify", FLOOR_VERIFY_LABEL, "s", None, "time.floor"),
    ("cold pull, default snapshotter", "time.dist_default", "time.ctr_overlay", CTR_OVERLAY,
     "s", 0.18, "time.floor"),
    ("cold pull, native snapshotter", "time.dist_native", "time.ctr_native",
     "`ctr images pull --snapshotter native`", "s", 0.25, "time.floor"),
    ("cold pull, overlay snapshotter", "time.dist_overlay", "time.ctr_overlay",
     CTR_OVERLAY, "s", 0.25, "time.floor"),
    ("pull + unpack to a directory", "time.dist_unpack", "time.skopeo_umoci",
     "`skopeo copy` + `umoci unpack`", "s", 0.20, "time.floor"),
    ("pull + unpack to a directory, vs the Rust peer", "time.dist_unpack",
     "time.peer_oci_client", "`peer-oci-client` (oci-client + flate2 + tar)", "s", 0.6,
     "time.floor"),
    ("peak RSS, pull + unpack vs the Rust peer", "rss.dist_unpack", "rss.peer_oci_client",
     "`peer-oci-client`", "rss", None),
    ("shaped link: cold pull, vs curl of every blob", "time.bw_dist", "time.bw_curl",
     "curl, every blob at once, to /dev/null", "s", 1.10, "time.bw_floor"),
    ("shaped link: cold pull, vs containerd", "time.bw_dist", "time.bw_ctr", CTR_OVERLAY,
     "s", 0.4, "time.bw_floor"),
    ("shaped link: cold pull, vs skopeo + umoci", "time.bw_dist", "time.bw_skopeo_umoci",
     "`skopeo copy` + `umoci unpack`", "s", None, "time.bw_floor"),
    ("shaped link: cold pull, vs the floor", "time.bw_dist", "time.bw_floor",
     FLOOR_LABEL + ", over the link", "s", None, "time.bw_floor"),
    ("peak RSS, shaped link pull", "rss.bw_dist", "rss.bw_ctr", "containerd daemon + ctr",
     "rss", None),
    ("many layers: cold pull, default snapshotter", "time.layers_dist_default",
     "time.layers_ctr_overlay", CTR_OVERLAY, "s", 0.25, "time.layers_floor"),
    ("many layers: cold pull, native snapshotter", "time.layers_dist_native",
     "time.layers_ctr_overlay", CTR_OVERLAY, "s", None, "time.layers_floor"),
    ("many layers: cold pull, overlay snapshotter", "time.layers_dist_overlay",
     "time.layers_ctr_overlay", CTR_OVERLAY, "s", None, "time.layers_floor"),
    ("many layers: pull + unpack to a directory", "time.layers_dist_unpack",
     "time.layers_skopeo_umoci", "`skopeo copy` + `umoci unpack`", "s", None,
     "time.layers_floor"),
    ("many layers: cold pull, default, vs the floor", "time.layers_dist_default",
     "time.layers_floor", FLOOR_LABEL, "s", None, "time.layers_floor"),
    ("peak RSS, many layers, default", "rss.layers_dist_default", "rss.layers_ctr_overlay",
     "containerd daemon + ctr", "rss", None),
    ("peak RSS, many layers, native", "rss.layers_dist_native", "rss.none", "–", "rss", None),
    ("peak RSS, many layers, overlay", "rss.layers_dist_overlay", "rss.none", "–", "rss", None),
    ("peak RSS, many layers, pull + unpack", "rss.layers_dist_unpack",
     "rss.layers_skopeo_umoci", "max(skopeo, umoci)", "rss", None),
    ("warm re-pull, native", "time.dist_warm_native", "time.ctr_warm_native",
     "`ctr images pull` again (native)", "s", 0.5),
    ("warm re-pull, overlay", "time.dist_warm_overlay", "time.ctr_warm_overlay",
     "`ctr images pull` again (overlayfs)", "s", 0.5),
    ("peak RSS, cold pull default", "rss.dist_default", "rss.floor", "the floor", "rss", None),
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


def link_mbytes(rate):
    """MB/s of a tc rate such as `400mbit`, or None."""
    m = re.fullmatch(r"([\d.]+)\s*([kmg]?)(bit|bps)", (rate or "").strip().lower())
    if not m:
        return None
    v = float(m.group(1)) * {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}[m.group(2)]
    return (v / 8 if m.group(3) == "bit" else v) / 1e6


# Time grows linearly: the least-squares line explains the medians (R² at least this), and
# the largest image costs at most this much more per byte than the 1x one.
LINEAR_R2 = 0.98
LINEAR_SLACK = 1.15
FLAT_RSS = 1.10


def scaling_section(args, results, notes, w):
    """The scaled images: a table, the linearity and flat-RSS verdicts, and the SVG."""
    sizes = []
    with open(args.scaling, encoding="utf-8") as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3:
                sizes.append((parts[0], int(parts[1]), int(parts[2])))
    if not sizes:
        return
    w("### Scaling: the test image at 0.5x, 1x, 2x and 4x its content")
    w("")
    w("| image | compressed | as tar | cold `dist pull` | floor | ÷ floor | s per GB "
      "compressed | peak RSS |")
    w("|---|---|---|---|---|---|---|---|")
    points = []
    for factor, comp, tar in sizes:
        dt, dmed = cell(results, f"time.scaling_dist_x{factor}", "s", notes)
        ft, fmed = cell(results, f"time.scaling_floor_x{factor}", "s", notes)
        rt, rmed = cell(results, f"rss.scaling_dist_x{factor}", "rss", notes)
        ratio = f"{dmed / fmed:.2f}x" if dmed is not None and fmed else "–"
        per_gb = f"{dmed / (comp / 1e9):.2f}" if dmed is not None and comp else "–"
        w(f"| {factor}x | {human_bytes(comp)} | {human_bytes(tar)} | {dt} | {ft} | {ratio} | "
          f"{per_gb} | {rt} |")
        points.append({
            "label": f"{factor}x",
            "mb": comp / 1e6,
            "dist_s": dmed,
            "floor_s": fmed,
            "dist_runs": results.get(f"time.scaling_dist_x{factor}", ([], []))[0],
            "rss_mib": rmed / 1024 if rmed is not None else None,
            "factor": factor,
            "comp": comp,
        })
    w("")
    fit = linear_fit([p["mb"] for p in points], [p["dist_s"] for p in points])
    one = next((p for p in points if p["factor"] == "1"), None)
    big = max(points, key=lambda p: p["comp"])
    lin_ok = None
    growth = "–"
    if fit and one and one["dist_s"] and big["dist_s"]:
        per_byte = (big["dist_s"] / big["comp"]) / (one["dist_s"] / one["comp"])
        growth = f"{per_byte:.2f}x"
        lin_ok = fit[2] >= LINEAR_R2 and per_byte <= LINEAR_SLACK
    rss = [p["rss_mib"] for p in points if p["rss_mib"] is not None]
    rss_ok = None
    if rss and one and one["rss_mib"]:
        rss_ok = max(rss) < RSS_LIMIT_KIB / 1024 and max(rss) <= FLAT_RSS * one["rss_mib"]
    w("| check | value | target | met |")
    w("|---|---|---|---|")
    if fit:
        a, b, r2 = fit
        w(f"| time grows linearly: least-squares fit of the medians | {a:.2f} s + "
          f"{b * 1000:.2f} s per GB, R² = {r2:.3f}; per byte, {big['factor']}x costs "
          f"{growth} of 1x | R² ≥ {LINEAR_R2}, per-byte cost ≤ {LINEAR_SLACK}x of 1x | "
          f"{verdict(lin_ok)} |")
    if rss:
        w(f"| peak RSS stays flat | {min(rss):.1f}–{max(rss):.1f} MiB | < 64 MiB, largest "
          f"≤ {FLAT_RSS}x of 1x | {verdict(rss_ok)} |")
    w("")
    if args.plot:
        caption = html.escape("cold dist pull (default snapshotter) and the floor, medians; "
                              "faint dots: every run")
        with open(args.plot, "w", encoding="utf-8") as f:
            f.write(scaling_svg(points, caption))
        w(f"![pull time and peak RSS against image size]({args.plot_link or args.plot})")
        w("")

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
    ap.add_argument("--scaling", help="TSV: factor, compressed bytes, tar bytes per image")
    ap.add_argument("--plot", help="where to write the scaling SVG")
    ap.add_argument("--plot-link", help="the SVG's path relative to the markdown")
    ap.add_argument("--link-rate", help="the shaped link's tc rate, e.g. 400mbit")
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
      "dist, peer). Ratio = dist / peer; lower is better. The ÷ floor columns divide "
      "the pull times by the floor measured on the same image in the same run.")
    w("")
    w("| measurement | dist | peer | peer tool | ratio | target | met | dist ÷ floor "
      "| peer ÷ floor |")
    w("|---|---|---|---|---|---|---|---|---|")
    for label, dk, pk, plabel, kind, target, *floor in PAIRS:
        if dk not in results or (pk not in results and pk != "rss.none"):
            continue  # a scenario this run left out (--only)
        fmed = median_of(results, floor[0])[0] if floor else None
        dfl = pfl = ""
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
        if fmed:
            dfl = f"{dmed / fmed:.2f}x" if dmed is not None else ""
            pfl = f"{pmed / fmed:.2f}x" if pmed is not None and pk != floor[0] else ""
        w(f"| {label} | {dtext} | {ptext} | {plabel} | {ratio} | {ttext} | {verdict(ok)} "
          f"| {dfl} | {pfl} |")

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
          f"{verdict(ok)} | | |")
        ttext, _ = cell(results, "time.dist_big", "s", notes)
        w(f"| (time of that 5x-layer pull, for scale) | {ttext} | | | | | | | |")
    # The shaped link really is that slow: curl's throughput against the tc rate.
    rtext, rmed = cell(results, "rate.bw_curl", "rate", notes)
    if rmed is not None or results.get("rate.bw_curl"):
        expect = link_mbytes(args.link_rate)
        ok, ttext = None, "–"
        if expect:
            ttext = f"≈ {expect:.0f} MB/s (0.85–1.02x of the rate)"
            if rmed is not None:
                ok = 0.85 * expect <= rmed <= 1.02 * expect
        w(f"| shaped link check: curl's throughput | {rtext} | | | | {ttext} | {verdict(ok)} "
          f"| | |")
    # Re-push of an image the registry has: an absolute bound, no peer.
    rtext, rmed = cell(results, "time.dist_repush", "s", notes)
    btext, _ = cell(results, "bytes.dist_repush", "bytes", notes)
    if rmed is not None or results.get("time.dist_repush"):
        nums = results.get("bytes.dist_repush", ([], []))[0]
        ok = None
        if rmed is not None and nums:
            ok = rmed < REPUSH_LIMIT_S and max(nums) == 0
        w(f"| re-push of the same image (everything there) | {rtext}, {btext} uploaded | "
          f"| | | < {REPUSH_LIMIT_S} s, 0 B | {verdict(ok)} | | |")
    w("")
    if args.scaling:
        scaling_section(args, results, notes, w)

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
