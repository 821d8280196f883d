#!/usr/bin/env bash
# Checks deploy/ the way CI can without a cluster or a container engine:
#   - the Dockerfile's COPY sources exist in the repo (deploy/validate/dockerfile.js);
#   - every overlay renders with `kubectl kustomize`;
#   - every rendered object validates against the Kubernetes API schemas,
#     unknown fields included (deploy/validate/schema.js);
#   - every tpserve container's args and mounted YAML config are accepted by
#     the built binary (`tpserve <args> --check-config`), and ports, probes,
#     scrape annotations, Services, --router/--worker addresses, GPU requests
#     and dashboard metrics agree with what it resolves, every rank of a replica
#     runs in one container holding all of its GPUs, and internal mutual TLS is
#     on for every component or none (deploy/validate/checks.js);
#   - cpu-demo runs for real twice (deploy/validate/live.js): as shipped, and
#     with the internal-tls component and certificates from
#     deploy/make_internal_certs.sh (a plaintext gRPC call must be refused).
# Prints one PASS/FAIL line per check and "N passed, M failed" last; exits 1
# on any failure.
#
# Usage: deploy/check.sh path/to/tpserve
# Needs kubectl (with its built-in kustomize), node >= 18 and npm; installs
# only the pinned npm packages of deploy/validate (npm ci).
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
passed=0
failed=0

pass() { echo "PASS $*"; passed=$((passed + 1)); }
fail() { echo "FAIL $*"; failed=$((failed + 1)); }

# Counts the PASS/FAIL lines of a sub-checker; a checker that died without
# reporting a failure counts as one.
tally() {
  local name=$1 rc=$2 out=$3 line before=$failed
  while IFS= read -r line; do
    case $line in
      PASS\ *) echo "$line"; passed=$((passed + 1)) ;;
      FAIL\ *) echo "$line"; failed=$((failed + 1)) ;;
      *) [[ -n $line ]] && echo "  $line" ;;
    esac
  done <"$out"
  if [[ $rc -ne 0 && $failed -eq $before ]]; then fail "$name: exited $rc without a reason"; fi
}

finish() {
  echo "$passed passed, $failed failed"
  [[ $failed -eq 0 ]]
  exit $?
}

if [[ $# -ne 1 ]]; then
  echo "usage: $0 path/to/tpserve" >&2
  exit 2
fi
binary=$1
[[ $binary == /* ]] || binary=$PWD/$binary
if [[ -x $binary && -f $binary ]]; then pass "binary $1"; else fail "binary $1: not an executable file"; fi

missing=0
for tool in kubectl node npm; do
  if command -v "$tool" >/dev/null; then
    pass "tool $tool"
  else
    fail "tool $tool: not installed"
    missing=1
  fi
done
[[ $missing -eq 0 ]] || finish

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

node "$here/validate/dockerfile.js" "$here/Dockerfile" "$root" "$binary" >"$work/docker.out" 2>&1
tally dockerfile $? "$work/docker.out"

if (cd "$here/validate" && npm ci --no-audit --no-fund --loglevel=error) >"$work/npm.out" 2>&1; then
  pass "npm ci deploy/validate"
else
  fail "npm ci deploy/validate: $(tail -n 3 "$work/npm.out" | tr '\n' ' ')"
  finish
fi

# The checkers' own tests: every check fails on the mistake it targets.
if TPSERVE_BIN=$binary node --test "$here/validate/" >"$work/selftest.out" 2>&1; then
  pass "selftest deploy/validate ($(sed -n 's/^# pass //p' "$work/selftest.out") tests)"
else
  fail "selftest deploy/validate: $(grep -E '^not ok' "$work/selftest.out" | tr '\n' ' ')"
fi

rendered=()
for dir in "$here"/k8s/overlays/*/; do
  name=$(basename "$dir")
  if kubectl kustomize "$dir" >"$work/$name.yaml" 2>"$work/$name.err"; then
    pass "render $name"
    rendered+=("$name=$work/$name.yaml")
  else
    fail "render $name: $(tr '\n' ' ' <"$work/$name.err")"
  fi
done
# cpu-demo with internal mutual TLS: the component on top of the overlay.
mkdir -p "$work/cpu-demo-internal-tls"
rel=$(realpath --relative-to="$work/cpu-demo-internal-tls" "$here/k8s")
printf '%s\n' "apiVersion: kustomize.config.k8s.io/v1beta1" "kind: Kustomization" \
  "resources: [$rel/overlays/cpu-demo]" "components: [$rel/components/internal-tls]" \
  >"$work/cpu-demo-internal-tls/kustomization.yaml"
if kubectl kustomize "$work/cpu-demo-internal-tls" >"$work/cpu-demo-internal-tls.yaml" 2>"$work/tls.err"; then
  pass "render cpu-demo + components/internal-tls"
  rendered+=("cpu-demo-internal-tls=$work/cpu-demo-internal-tls.yaml")
else
  fail "render cpu-demo + components/internal-tls: $(tr '\n' ' ' <"$work/tls.err")"
fi
if bash "$here/make_internal_certs.sh" "$work/certs" tpserve-demo >"$work/certs.out" 2>&1 &&
   openssl verify -CAfile "$work/certs/ca.crt" "$work/certs/tls.crt" >/dev/null 2>&1; then
  pass "make_internal_certs.sh ($(sed -n 's/^subject alternative names: //p' "$work/certs.out"))"
  mkdir -p "$work/internal-tls" && cp "$work/certs/ca.crt" "$work/certs/tls.crt" "$work/certs/tls.key" "$work/internal-tls/"
else
  fail "make_internal_certs.sh: $(tail -n 3 "$work/certs.out" | tr '\n' ' ')"
fi
if [[ ${#rendered[@]} -eq 0 ]]; then
  fail "render: no overlay rendered"
  finish
fi

if [[ -x $binary ]]; then
  node "$here/validate/validate.js" --binary "$binary" "${rendered[@]}" >"$work/validate.out" 2>&1
  tally validate $? "$work/validate.out"
fi

# The cpu-demo pods for real, in a private network namespace (their fixed
# ports stay off the host's); the model path inside the image maps to the
# fixture the Dockerfile copies it from.
live() {
  local name=$1
  shift
  if unshare --net --mount true 2>/dev/null; then
    unshare --net --mount node "$here/validate/live.js" --binary "$binary" \
      --map "/usr/local/share/tpserve/models/tiny-qwen2-chat=$root/tests/fixtures/tiny-qwen2-chat" \
      --dashboard "$here/k8s/components/monitoring/tpserve-dashboard.json" \
      "$@" "$work/$name.yaml" 2>&1 | sed "s/^\(PASS\|FAIL\) live /\1 live $name /" >"$work/live-$name.out"
    tally "live $name" "${PIPESTATUS[0]}" "$work/live-$name.out"
  else
    fail "live $name: needs root for a private network namespace (unshare --net --mount)"
  fi
}
if [[ -x $binary && -f $work/cpu-demo.yaml ]]; then live cpu-demo; fi
if [[ -x $binary && -f $work/cpu-demo-internal-tls.yaml && -f $work/internal-tls/tls.key ]]; then
  live cpu-demo-internal-tls --secret "tpserve-internal-tls=$work/internal-tls"
fi
finish
