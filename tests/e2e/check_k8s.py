"""Check a rendered Kustomize build for what the deployment relies on.

kubernetes-validate proves the manifests are valid Kubernetes; this proves
they say what the README promises: the job's hardening, the .env on a
memory-backed emptyDir that reaches the application as /app/.env, the key
from a Secret through *_FILE, and paths that agree with the ConfigMap.
Usage: check_k8s.py RENDERED.yaml
"""

import sys

import yaml

docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
by_kind = {}
for doc in docs:
    by_kind.setdefault(doc["kind"], []).append(doc)
problems = []


def expect(condition, what):
    if not condition:
        problems.append(what)


def one(kind):
    found = by_kind.get(kind, [])
    expect(len(found) == 1, f"exactly one {kind}, found {len(found)}")
    return found[0] if found else {}


config = one("ConfigMap")
data = config.get("data", {})
expect(data.get("PROVISION_MODE") == "production", "PROVISION_MODE=production in the ConfigMap")
pvc = one("PersistentVolumeClaim")
expect(not by_kind.get("Secret"), "no Secret in the build: the key never goes into git")


def check_job_container(pod, container, where):
    sc = container.get("securityContext", {})
    pod_sc = pod.get("securityContext", {})
    expect(sc.get("runAsNonRoot") is True, f"{where}: runAsNonRoot")
    expect(sc.get("runAsUser") == 65532 and sc.get("runAsGroup") == 65532, f"{where}: uid/gid 65532")
    expect(sc.get("readOnlyRootFilesystem") is True, f"{where}: readOnlyRootFilesystem")
    expect(sc.get("allowPrivilegeEscalation") is False, f"{where}: allowPrivilegeEscalation false")
    expect(sc.get("capabilities", {}).get("drop") == ["ALL"], f"{where}: drop ALL capabilities")
    expect(sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", f"{where}: seccomp RuntimeDefault")
    expect(pod_sc.get("fsGroup") == 65532, f"{where}: the pod's fsGroup is 65532")
    expect(pod_sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", f"{where}: pod seccomp")
    expect(container.get("terminationMessagePolicy") == "FallbackToLogsOnError",
           f"{where}: terminationMessagePolicy FallbackToLogsOnError")
    refs = [e.get("configMapRef", {}).get("name") for e in container.get("envFrom", [])]
    expect(config.get("metadata", {}).get("name") in refs, f"{where}: envFrom the ConfigMap")
    env = {e["name"]: e for e in container.get("env", [])}
    expect("OPENROUTER_API_KEY" not in env and "OPENROUTER_API_KEY" not in data,
           f"{where}: the key only through OPENROUTER_API_KEY_FILE")
    key_file = env.get("OPENROUTER_API_KEY_FILE", {}).get("value", "")
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    mounts = {m["mountPath"]: m for m in container.get("volumeMounts", [])}
    secret_mounts = [
        path for path, m in mounts.items()
        if "secret" in volumes.get(m["name"], {}) and key_file.startswith(path + "/")
    ]
    expect(len(secret_mounts) == 1, f"{where}: OPENROUTER_API_KEY_FILE lies in a mounted Secret")
    data_mount = mounts.get(data.get("DATA_DIR", "?"))
    expect(data_mount is not None
           and volumes.get(data_mount["name"], {}).get("persistentVolumeClaim", {}).get("claimName")
           == pvc.get("metadata", {}).get("name"),
           f"{where}: DATA_DIR is the PVC's mount")
    env_dir = data.get("ENV_FILE", "").rsplit("/", 1)[0]
    env_mount = mounts.get(env_dir)
    expect(env_mount is not None
           and volumes.get(env_mount["name"], {}).get("emptyDir", {}).get("medium") == "Memory",
           f"{where}: ENV_FILE lies on an emptyDir with medium Memory")
    return env_mount["name"] if env_mount else None


deployment = one("Deployment")
pod = deployment.get("spec", {}).get("template", {}).get("spec", {})
inits = pod.get("initContainers", [])
expect(len(inits) == 1, "one initContainer")
env_volume = check_job_container(pod, inits[0], "initContainer") if inits else None
apps = pod.get("containers", [])
expect(len(apps) == 1, "one application container")
if apps:
    app_mounts = {m["mountPath"]: m for m in apps[0].get("volumeMounts", [])}
    dotenv = app_mounts.get("/app/.env", {})
    expect(dotenv.get("name") == env_volume and dotenv.get("subPath") == ".env",
           "the application mounts the job's .env at /app/.env with subPath")
    expect(data.get("ENV_FILE", "").endswith("/.env"), "ENV_FILE is named .env")
    expect(data.get("DATA_DIR") in app_mounts, "the application mounts the data volume at DATA_DIR")
expect(deployment.get("spec", {}).get("strategy", {}).get("type") == "Recreate",
       "Recreate: never two pods on one SQLite file")

job = one("Job")
job_pod = job.get("spec", {}).get("template", {}).get("spec", {})
expect(job_pod.get("restartPolicy") == "Never", "the Job's pod: restartPolicy Never")
job_containers = job_pod.get("containers", [])
expect(len(job_containers) == 1, "one container in the Job")
if job_containers:
    check_job_container(job_pod, job_containers[0], "Job")
    expect(any(a.startswith("--wait-for-database") for a in job_containers[0].get("args", [])),
           "the Job uses the wait mode")

for problem in problems:
    print(f"check_k8s: {sys.argv[1]}: missing: {problem}", file=sys.stderr)
sys.exit(1 if problems else 0)
