"""Build clank-store's records-v1 dictionary: typical records, rarest first, the most
common (image deployments) last, so their matches are the nearest."""
import json, sys, os, re
S = os.environ.get("SAMPLES", "/tmp/samples")
def load(name):
    return json.loads(open(f"{S}/{name}", "rb").read())
dep = load("rec_deployment")
svc = load("rec_service")
env = load("rec_environment")
proj = load("rec_project")
# Ids of one era (UUIDv7: the first 12 hex digits are the time), as a real instance has.
import random
random.seed(20261207)
def fresh(like):
    # Same era (the first 8 hex digits: the time in ~65 s units), the rest random.
    h = like.replace("-", "")[:8] + "".join(random.choice("0123456789abcdef") for _ in range(24))
    h = h[:12] + "7" + h[13:16] + random.choice("89ab") + h[17:]
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
W, P, E, SV, D = (fresh(dep[k]) for k in ("workspace_id", "project_id", "environment_id", "service_id", "id"))
for r in (dep, svc, env, proj):
    for k, v in list(r.items()):
        if isinstance(v, str) and re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", v):
            r[k] = {"workspace_id": W, "project_id": P, "environment_id": E, "service_id": SV}.get(k, fresh(v))
t = dep["created_at"] - 7654321
for r in (dep, svc, env, proj):
    for k in ("created_at", "updated_at"):
        if k in r:
            r[k] = t
dep["state"]["since"] = t
svc["slug"], svc["name"] = "api", "API"
svc["next_deployment_number"] = 8
settings = dep["snapshot"]["settings"]
def hist(path, reasons):
    out, prev, at = [], None, t
    for to in path:
        out.append({"from": prev, "to": to, "at": at, "reason": reasons.get(to)})
        prev, at = to, at + 1234
    return out
build = {"id": D, "service_id": SV, "deployment_id": D, "number": 12,
         "repo_url": "https://github.com/acme/shop.git", "git_ref": "main",
         "commit_sha": "3f5e9c1d2b7a4e6f8091a2b3c4d5e6f708192a3b", "commit_subject": "Fix the checkout page",
         "dockerfile": "Dockerfile", "procfile": None, "framework": "node",
         "image": "clank/shop-web:v12", "status": "succeeded", "failure": None,
         "started_at": t, "finished_at": t + 61234}
git_settings = dict(settings)
git_dep = {"id": D, "service_id": SV, "workspace_id": W, "project_id": P, "environment_id": E,
    "number": 12, "trigger": {"kind": "auto_deploy", "commit": "3f5e9c1d2b7a4e6f8091a2b3c4d5e6f708192a3b", "branch": "main"},
    "created_at": t,
    "snapshot": {"artifact": {"kind": "build", "repo_url": "https://github.com/acme/shop.git", "git_ref": "main",
                               "commit": "3f5e9c1d2b7a4e6f8091a2b3c4d5e6f708192a3b", "dockerfile_path": None, "build_context": None},
                 "config": {"vars": {
                     "DATABASE_URL": {"key": "DATABASE_URL", "value": {"secret": {"key_id": "k1", "nonce": "q2x9Zk1vY3Jvc3N0YW1w", "ciphertext": "Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5d2FsZG9mcmVk"}},
                                      "updated_at": t, "source": f"environment:{E}", "overridden": [f"project:{P}"]},
                     "LOG_LEVEL": {"key": "LOG_LEVEL", "value": {"plain": "info"}, "updated_at": t, "source": f"workspace:{W}", "overridden": []},
                     "NODE_ENV": {"key": "NODE_ENV", "value": {"plain": "production"}, "updated_at": t, "source": f"service:{SV}", "overridden": []},
                     "PORT": {"key": "PORT", "value": {"plain": "3000"}, "updated_at": t, "source": f"project:{P}", "overridden": []}}},
                 "settings": git_settings,
                 "volumes": [{"name": "clank-shop-web-data", "mount_path": "/data"}],
                 "endpoint": {"mode": "public_direct", "domains": ["shop.example.com", "www.shop.example.com"], "tls": {"kind": "acme"}},
                 "processes": {"web": {"command": None, "replicas": 1}, "worker": {"command": ["npm", "run", "worker"], "replicas": 2}},
                 "server_id": None},
    "state": {"status": "ACTIVE", "since": t, "deadline": None, "reason": None, "image": "clank/shop-web:v12",
              "image_digest": "sha256:9b2a7c4e5d6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f809",
              "build_id": D, "cancel": None,
              "history": hist(["PENDING", "BUILDING", "DEPLOYING", "HEALTH_CHECKING", "ACTIVE"], {})}}
git_svc = dict(svc)
git_svc.update({"slug": "web", "name": "Web",
    "source": {"kind": "git", "repo_url": "https://github.com/acme/shop.git", "branch": "main", "dockerfile_path": None, "build_context": None},
    "volumes": git_dep["snapshot"]["volumes"], "endpoint": git_dep["snapshot"]["endpoint"],
    "processes": git_dep["snapshot"]["processes"], "active_deployment": D,
    "next_deployment_number": 13, "next_build_number": 13})
preview = dict(env)
preview.update({"name": "pr-42", "kind": {"kind": "preview", "pull_request": 42, "branch": "feature/checkout", "expires_at": t}})
rollback = json.loads(json.dumps(dep))
rollback["trigger"] = {"kind": "rollback_of", "deployment": D, "number": 9}
rollback["state"]["status"] = "CANCELLED"
rollback["state"]["reason"] = "cancelled by ada@example.com"
rollback["state"]["history"] = hist(["PENDING", "DEPLOYING", "CANCELLED"], {"CANCELLED": "cancelled by ada@example.com"})
superseded = json.loads(json.dumps(dep))
superseded["state"]["status"] = "SUPERSEDED"
superseded["state"]["reason"] = "superseded by deployment #8"
superseded["state"]["history"] = hist(["PENDING", "DEPLOYING", "HEALTH_CHECKING", "ACTIVE", "SUPERSEDED"], {"SUPERSEDED": "superseded by deployment #8"})
failed = json.loads(json.dumps(dep))
failed["state"]["status"] = "FAILED"
failed["state"]["reason"] = "health check failed 3 times in a row (last: HTTP 503)"
failed["state"]["history"] = hist(["PENDING", "DEPLOYING", "FAILED"], {"FAILED": failed["state"]["reason"]})
for r in (dep, svc, failed, superseded, rollback):
    pass
IMG = "registry.example/shop/api:1.4.2"
records = [build, proj, preview, env, git_svc, git_dep, rollback, svc, failed, superseded]
out = b"".join(
    json.dumps(r, separators=(",", ":")).encode() + b"\n" for r in records)
out = out.replace(IMG.encode(), b"ghcr.io/acme/shop-api:2.3.1")
sys.stdout.buffer.write(out)
