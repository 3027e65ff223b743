"""Lay out deploy/kubernetes/ as the pod would see it, for tests/kubernetes.rs.

usage: k8s_layout.py MANIFESTS_DIR ROOT MATERIAL_DIR [--drop-key KEY]

Reads every manifest, and for the Deployment's container writes under ROOT each mounted
volume at its mountPath: a ConfigMap's data as files, a Secret's keys (taken from
MATERIAL_DIR/<key>, the placeholders in the manifests are not material) at their `items`
paths. Key files get mode 0600. Prints the container's --config path under ROOT.
"""
import os
import re
import sys

import yaml


def main():
    manifests, root, material = sys.argv[1:4]
    drop = sys.argv[5] if len(sys.argv) > 5 and sys.argv[4] == "--drop-key" else None
    docs = []
    for name in sorted(os.listdir(manifests)):
        if name.endswith(".yaml"):
            with open(os.path.join(manifests, name)) as f:
                docs.extend(d for d in yaml.safe_load_all(f) if d)
    by_kind = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    container = pod["containers"][0]
    for mount in container["volumeMounts"]:
        vol = volumes[mount["name"]]
        base = os.path.join(root, mount["mountPath"].lstrip("/"))
        os.makedirs(base, exist_ok=True)
        if "configMap" in vol:
            cm = by_kind[("ConfigMap", vol["configMap"]["name"])]
            for key, text in cm["data"].items():
                if drop:
                    text = re.sub(r"(?m)^%s\s*=.*\n" % re.escape(drop), "", text)
                write(os.path.join(base, key), text.encode(), 0o644)
        elif "secret" in vol:
            secret = by_kind[("Secret", vol["secret"]["secretName"])]
            keys = list(secret.get("stringData", {})) + list(secret.get("data", {}))
            items = vol["secret"].get("items") or [{"key": k, "path": k} for k in keys]
            for item in items:
                assert item["key"] in keys, "volume item %s is not in the Secret" % item["key"]
                with open(os.path.join(material, item["key"]), "rb") as f:
                    data = f.read()
                mode = 0o600 if item["key"].endswith(".key") else 0o644
                write(os.path.join(base, item["path"]), data, mode)
    args = container["args"]
    print(os.path.join(root, args[args.index("--config") + 1].lstrip("/")))


def write(path, data, mode):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


if __name__ == "__main__":
    main()
