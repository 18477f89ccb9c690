#!/usr/bin/env python3
"""Adds an image to an OCI layout from layer blobs already in it (benches/e2e/image.sh).

Usage: oci_image.py LAYOUT TAG DIGEST:SIZE:DIFFID...

Each argument names a gzip layer blob already stored under LAYOUT/blobs/sha256/ (its
digest and size) and the sha256 of its uncompressed tar (the DiffID). Writes the config
(linux/amd64, Cmd /bin/sh) and the manifest as blobs, and points TAG in index.json at the
manifest (replacing an older TAG), as `umoci` does for the images it builds.
"""

import hashlib
import json
import os
import sys


def put_blob(layout, data):
    digest = hashlib.sha256(data).hexdigest()
    path = os.path.join(layout, "blobs", "sha256", digest)
    with open(path + ".tmp", "wb") as f:
        f.write(data)
    os.replace(path + ".tmp", path)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    layout, tag, specs = sys.argv[1], sys.argv[2], sys.argv[3:]
    os.makedirs(os.path.join(layout, "blobs", "sha256"), exist_ok=True)
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    layers, diff_ids = [], []
    for spec in specs:
        digest, size, diff_id = spec.split(":")
        layers.append({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": f"sha256:{digest}",
            "size": int(size),
        })
        diff_ids.append(f"sha256:{diff_id}")
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created_by": "benches/e2e/image.sh"} for _ in layers],
    }
    cdesc = put_blob(layout, json.dumps(config, separators=(",", ":")).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **cdesc},
        "layers": layers,
    }
    mdesc = put_blob(layout, json.dumps(manifest, separators=(",", ":")).encode())
    index_path = os.path.join(layout, "index.json")
    try:
        with open(index_path) as f:
            index = json.load(f)
    except FileNotFoundError:
        index = {"schemaVersion": 2, "manifests": []}
    name = "org.opencontainers.image.ref.name"
    index["manifests"] = [m for m in index.get("manifests", [])
                          if m.get("annotations", {}).get(name) != tag]
    index["manifests"].append({
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        **mdesc,
        "annotations": {name: tag},
    })
    with open(index_path + ".tmp", "w") as f:
        json.dump(index, f)
    os.replace(index_path + ".tmp", index_path)


if __name__ == "__main__":
    main()
