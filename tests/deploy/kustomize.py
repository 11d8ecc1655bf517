"""A small kustomize renderer for deploy/kubernetes, for machines without kubectl or kustomize.

It implements only the kustomization fields deploy/kubernetes uses, and refuses any other:
`resources` (files, or directories holding a kustomization.yaml), `namespace`, `images`
(name, newName, newTag, digest), `replicas` (name, count) and `patches` given by `path`
(strategic-merge patches whose target is the patch's own kind and name; lists of named
objects such as containers, volumes, env and ports merge by `name`, other lists are
replaced, a null value deletes the key). When kubectl is installed, tests/deploy/check.py
renders with `kubectl kustomize` too and requires both renderings to be equal.

    python3 tests/deploy/kustomize.py deploy/kubernetes/overlays/production
"""

from __future__ import annotations

import copy
import os
import sys

import yaml

SUPPORTED = {"apiVersion", "kind", "resources", "namespace", "images", "replicas", "patches"}
# Resources that are not namespaced, among the kinds kustomize knows (the ones this project
# could plausibly use); kustomize leaves their metadata.namespace alone.
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
                  "PriorityClass", "StorageClass", "PersistentVolume", "IngressClass"}
# Lists merged by a key in strategic-merge patches (the patch strategy of the Kubernetes
# types, for the fields this project's patches could touch).
MERGE_KEYS = {
    "containers": "name", "initContainers": "name", "volumes": "name", "volumeMounts": "mountPath",
    "env": "name", "ports": "containerPort", "imagePullSecrets": "name",
}


class RenderError(Exception):
    pass


def load_all(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def render(directory: str) -> list[dict]:
    kpath = os.path.join(directory, "kustomization.yaml")
    if not os.path.isfile(kpath):
        raise RenderError(f"{directory}: no kustomization.yaml")
    (k,) = load_all(kpath)
    unknown = set(k) - SUPPORTED
    if unknown:
        raise RenderError(f"{kpath}: fields this renderer does not implement: {sorted(unknown)}")
    if k.get("kind") != "Kustomization":
        raise RenderError(f"{kpath}: kind is {k.get('kind')!r}, not Kustomization")

    docs: list[dict] = []
    for res in k.get("resources", []):
        p = os.path.normpath(os.path.join(directory, res))
        if os.path.isdir(p):
            docs.extend(render(p))
        elif os.path.isfile(p):
            docs.extend(load_all(p))
        else:
            raise RenderError(f"{kpath}: resource {res} not found")
    ids = [(d.get("kind"), d.get("metadata", {}).get("name")) for d in docs]
    if len(ids) != len(set(ids)):
        raise RenderError(f"{kpath}: a resource is declared twice: {ids}")

    for patch in k.get("patches", []):
        if set(patch) != {"path"}:
            raise RenderError(f"{kpath}: only `patches: - path: FILE` is implemented, got {patch}")
        for p in load_all(os.path.join(directory, patch["path"])):
            kind, name = p.get("kind"), p.get("metadata", {}).get("name")
            targets = [d for d in docs if d.get("kind") == kind and d["metadata"].get("name") == name]
            if len(targets) != 1:
                raise RenderError(f"{patch['path']}: no single {kind}/{name} to patch")
            merged = smp(targets[0], p)
            docs[docs.index(targets[0])] = merged

    for r in k.get("replicas", []):
        hits = [d for d in docs if d.get("kind") in ("Deployment", "StatefulSet", "ReplicaSet")
                and d["metadata"].get("name") == r["name"]]
        if not hits:
            raise RenderError(f"{kpath}: replicas: no workload named {r['name']}")
        for d in hits:
            d.setdefault("spec", {})["replicas"] = r["count"]

    for img in k.get("images", []):
        for d in docs:
            for c in pod_containers(d):
                c["image"] = retag(c.get("image", ""), img)

    ns = k.get("namespace")
    if ns:
        for d in docs:
            if d.get("kind") not in CLUSTER_SCOPED:
                d.setdefault("metadata", {})["namespace"] = ns
    return docs


def pod_containers(doc: dict) -> list[dict]:
    spec = doc.get("spec", {})
    if doc.get("kind") == "CronJob":
        spec = spec.get("jobTemplate", {}).get("spec", {})
    pod = spec.get("template", {}).get("spec", {}) if doc.get("kind") != "Pod" else spec
    return list(pod.get("containers", [])) + list(pod.get("initContainers", []))


def split_image(image: str) -> tuple[str, str, str]:
    """name, ':tag' or '', '@digest' or ''."""
    digest = ""
    if "@" in image:
        image, d = image.split("@", 1)
        digest = "@" + d
    tag = ""
    last = image.rsplit("/", 1)[-1]
    if ":" in last:
        image, t = image.rsplit(":", 1)
        tag = ":" + t
    return image, tag, digest


def retag(image: str, rule: dict) -> str:
    name, tag, digest = split_image(image)
    if name != rule["name"]:
        return image
    extra = set(rule) - {"name", "newName", "newTag", "digest"}
    if extra:
        raise RenderError(f"images: fields not implemented: {sorted(extra)}")
    name = rule.get("newName", name)
    if "newTag" in rule:
        tag, digest = ":" + str(rule["newTag"]), ""
    if "digest" in rule:
        tag, digest = "", "@" + rule["digest"]
    return name + tag + digest


def smp(base, patch, key: str | None = None):
    """Strategic merge of `patch` into `base` (a copy is returned)."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = copy.deepcopy(base)
        for k, v in patch.items():
            if v is None:
                out.pop(k, None)
            elif k in out:
                out[k] = smp(out[k], v, k)
            else:
                out[k] = copy.deepcopy(v)
        return out
    if isinstance(base, list) and isinstance(patch, list):
        mk = MERGE_KEYS.get(key or "")
        if mk and all(isinstance(x, dict) and mk in x for x in base + patch):
            out = copy.deepcopy(base)
            for item in patch:
                same = [i for i, x in enumerate(out) if x[mk] == item[mk]]
                if same:
                    out[same[0]] = smp(out[same[0]], item)
                else:
                    out.append(copy.deepcopy(item))
            return out
        return copy.deepcopy(patch)
    return copy.deepcopy(patch)


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        docs = render(sys.argv[1])
    except RenderError as e:
        print(f"kustomize.py: {e}", file=sys.stderr)
        return 1
    sys.stdout.write(yaml.safe_dump_all(docs, sort_keys=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
