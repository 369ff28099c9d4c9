"""Check a rendered Kustomize build for what the deployment relies on.

kubernetes-validate proves the manifests are valid Kubernetes; this proves
they say what the README promises: the job as a plain initContainer and as a
native sidecar (`restartPolicy: Always`, `--sidecar`), both hardened; the
.env on a memory-backed emptyDir that reaches the application as /app/.env;
the job's key store on the data volume, mounted read-only where the image's
start script reads it (docs/mai-contract.md, "WEBUI_SECRET_KEY and the start
script"); the key from a Secret through *_FILE; paths that agree with the
ConfigMap; and an application image that the base leaves as a placeholder
an overlay must replace. A build with the minting component (`minting`)
gives both jobs a management key from a Secret instead of the client's key.
For the PostgreSQL overlay (`postgres`): several replicas with rolling
updates, no PVC (DATA_DIR is a per-pod emptyDir that holds the key store
copy), the database's URL and WEBUI_SECRET_KEY from mounted Secrets through
*_FILE, and the application's DATABASE_URL from the same Secret.
Usage: check_k8s.py RENDERED.yaml {base|overlay|minting|postgres}
"""

import sys

import yaml

# The base's application image: a valid reference that can never be pulled.
PLACEHOLDER_IMAGE = "set-the-mai-image-in-your-overlay"
# The key store's name on the data volume (the job's default, under DATA_DIR).
KEY_STORE = ".webui_secret_key"
# Where the image's start script reads the key.
START_SCRIPT_KEY = "/app/backend/.webui_secret_key"

if len(sys.argv) != 3 or sys.argv[2] not in ("base", "overlay", "minting", "postgres"):
    sys.exit("usage: check_k8s.py RENDERED.yaml {base|overlay|minting|postgres}")
kind_of_build = sys.argv[2]
postgres = kind_of_build == "postgres"
# The job's key, through a file in a mounted Secret: the client's key, or
# with the minting component a management key (never both: 78).
KEY_FILE_VAR = "OPENROUTER_MANAGEMENT_KEY_FILE" if kind_of_build == "minting" else "OPENROUTER_API_KEY_FILE"
OTHER_KEY_VARS = {"OPENROUTER_API_KEY", "OPENROUTER_API_KEY_FILE", "OPENROUTER_MANAGEMENT_KEY",
                  "OPENROUTER_MANAGEMENT_KEY_FILE", "OPENROUTER_PROVISIONING_KEY",
                  "OPENROUTER_PROVISIONING_KEY_FILE"} - {KEY_FILE_VAR}
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
pvc = {} if postgres else one("PersistentVolumeClaim")
if postgres:
    expect(not by_kind.get("PersistentVolumeClaim"), "no PVC: the database is PostgreSQL")
    expect("DATABASE_URL" not in data, "the URL (it holds a password) is not in the ConfigMap")
    expect("WEBUI_SECRET_KEY" not in data, "the session key is not in the ConfigMap")
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
    expect(not (OTHER_KEY_VARS & (set(env) | set(data))), f"{where}: the key only through {KEY_FILE_VAR}")
    key_file = env.get(KEY_FILE_VAR, {}).get("value", "")
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    mounts = {m["mountPath"]: m for m in container.get("volumeMounts", [])}
    secret_mounts = [
        path for path, m in mounts.items()
        if "secret" in volumes.get(m["name"], {}) and key_file.startswith(path + "/")
    ]
    expect(len(secret_mounts) == 1, f"{where}: {KEY_FILE_VAR} lies in a mounted Secret")
    data_mount = mounts.get(data.get("DATA_DIR", "?"))
    if postgres:
        data_volume = volumes.get(data_mount["name"], {}) if data_mount else {}
        expect("emptyDir" in data_volume and "persistentVolumeClaim" not in data_volume,
               f"{where}: DATA_DIR is a per-pod emptyDir")
        for var in ("DATABASE_URL_FILE", "WEBUI_SECRET_KEY_FILE"):
            path = data.get(var, "")
            in_secret = [
                p for p, m in mounts.items()
                if "secret" in volumes.get(m["name"], {}) and path.startswith(p + "/")
            ]
            expect(len(in_secret) == 1, f"{where}: {var} lies in a mounted Secret")
    else:
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
expect(len(inits) == 2, f"two initContainers (the job, then its sidecar), found {len(inits)}")
plain = inits[0] if inits else {}
sidecar = inits[1] if len(inits) > 1 else {}
# The plain one runs to completion before anything else starts.
expect("restartPolicy" not in plain, "the first initContainer is a plain one (no restartPolicy)")
expect(not any(a.startswith(("--sidecar", "--wait-for-database")) for a in plain.get("args", [])),
       "the plain initContainer neither idles nor waits: the application must start")
env_volume = check_job_container(pod, plain, "initContainer") if plain else None
# The native sidecar: restarted whenever it exits, so it must not exit.
expect(sidecar.get("restartPolicy") == "Always", "the second initContainer is a native sidecar (restartPolicy Always)")
expect("--sidecar" in sidecar.get("args", []), "the sidecar runs with --sidecar")
expect(sidecar.get("image") == plain.get("image"), "the sidecar runs the job's image")
if sidecar:
    sidecar_env_volume = check_job_container(pod, sidecar, "sidecar")
    expect(sidecar_env_volume == env_volume, "the sidecar writes the same .env as the initContainer")
    expect(sorted(sidecar.get("volumeMounts", []), key=str) == sorted(plain.get("volumeMounts", []), key=str)
           and sidecar.get("env") == plain.get("env") and sidecar.get("envFrom") == plain.get("envFrom"),
           "the sidecar has the initContainer's env and mounts")
apps = pod.get("containers", [])
expect(len(apps) == 1, "one application container")
if apps:
    app = apps[0]
    app_mounts = {m["mountPath"]: m for m in app.get("volumeMounts", [])}
    dotenv = app_mounts.get("/app/.env", {})
    expect(dotenv.get("name") == env_volume and dotenv.get("subPath") == ".env",
           "the application mounts the job's .env at /app/.env with subPath")
    expect(data.get("ENV_FILE", "").endswith("/.env"), "ENV_FILE is named .env")
    expect(data.get("DATA_DIR") in app_mounts, "the application mounts the data volume at DATA_DIR")
    key = app_mounts.get(START_SCRIPT_KEY, {})
    data_volume = app_mounts.get(data.get("DATA_DIR"), {}).get("name")
    expect(key.get("name") == data_volume and key.get("subPath") == KEY_STORE,
           f"the application mounts the key store ({KEY_STORE} on the data volume) at {START_SCRIPT_KEY}")
    expect(key.get("readOnly") is True, "the key store is mounted readOnly")
    expect("WEBUI_SECRET_KEY_STORE" not in data, "the key store is the job's default, on the data volume")
    env_names = {e.get("name") for e in app.get("env", [])}
    expect(not env_names & {"WEBUI_SECRET_KEY", "WEBUI_JWT_SECRET_KEY"},
           "the application's environment has no key, so the start script reads the key store")
    image = app.get("image", "")
    if kind_of_build == "base":
        expect(image == PLACEHOLDER_IMAGE, f"the base's application image is the placeholder {PLACEHOLDER_IMAGE}")
    else:
        expect(image and PLACEHOLDER_IMAGE not in image, "the overlay replaces the placeholder image")
expect(PLACEHOLDER_IMAGE not in yaml.safe_dump_all(docs) or kind_of_build == "base",
       "the overlay holds no placeholder anywhere")
if postgres:
    expect(deployment.get("spec", {}).get("replicas", 1) >= 2, "several replicas")
    expect(deployment.get("spec", {}).get("strategy", {}).get("type") == "RollingUpdate",
           "RollingUpdate: PostgreSQL serves every replica")
    app_env = {e["name"]: e for e in (apps[0].get("env", []) if apps else [])}
    ref = app_env.get("DATABASE_URL", {}).get("valueFrom", {}).get("secretKeyRef", {})
    job_volumes = {v["name"]: v for v in pod.get("volumes", [])}
    secret_names = {v.get("secret", {}).get("secretName") for v in job_volumes.values()}
    expect(ref.get("name") in secret_names,
           "the application's DATABASE_URL comes from the Secret the job reads")
else:
    expect(deployment.get("spec", {}).get("strategy", {}).get("type") == "Recreate",
           "Recreate: never two pods on one SQLite file")
expect(not by_kind.get("Job"), "no Job: the native sidecar does the first-boot wait")

for problem in problems:
    print(f"check_k8s: {sys.argv[1]}: missing: {problem}", file=sys.stderr)
sys.exit(1 if problems else 0)
