#!/usr/bin/env bash
# The Secrets the manifests reference, made with fresh random values and the fleet's identities,
# and applied to the cluster (no value is written into the repository):
#
#   k8s/create-secrets.sh --dev --credentials DIR --site example             # overlay dev
#   k8s/create-secrets.sh --database-url URL --credentials DIR \
#       --site teide --site la-silla --site siding-spring                    # overlay prod
#   k8s/create-secrets.sh --fleet-only --credentials DIR --site ... --site NEW   # a site added
#   k8s/create-secrets.sh --example          # print them with placeholders, apply nothing
#
#   skyfleet-database   url (SKYFLEET_DATABASE_URL), password (the dev PostgreSQL's)
#   fleet-hub-auth      hub-auth.conf (the hub's users: public keys and permissions)
#   fleet-coordinator   seed.nk (the coordinator's identity; `skyfleet site join` uses it too)
#   fleet-site-<id>     seed.nk (each site's identity, for its leaf link to the hub)
#
# DIR is the credentials folder of `skyfleet fleet credentials` (made if missing; keys already
# in it are kept): keep it safe and out of the repository, it holds every seed. SKYFLEET names
# the command to run it with (default: `skyfleet`; e.g. `docker run --rm -u "$(id -u)" -v
# "$DIR:$DIR" REGISTRY/skyfleet-coordinator:TAG`). --fleet-only leaves the database Secret as it
# is (a new password would no longer open the dev PostgreSQL). Console users are not Secrets:
# the console keeps them (`skyfleet users add`, k8s/README.md).
# k8s/secrets.example.yaml is this script's --example output (a test keeps it so).
set -euo pipefail

namespace=skyfleet
mode=""
database_url=""
credentials=""
sites=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --dev) mode=dev ;;
    --example) mode=example ;;
    --fleet-only) mode=fleet ;;
    --database-url) mode=prod; database_url="${2:?--database-url needs a URL}"; shift ;;
    --credentials) credentials="${2:?--credentials needs a folder}"; shift ;;
    --site) sites+=("${2:?--site needs a site id}"); shift ;;
    --namespace) namespace="${2:?--namespace needs a name}"; shift ;;
    *) mode="" ; break ;;
  esac
  shift
done
if [[ -z "$mode" || ( "$mode" != example && ( -z "$credentials" || ${#sites[@]} -eq 0 ) ) ]]; then
  echo "usage: $0 (--dev | --database-url URL | --fleet-only) --credentials DIR --site ID..." >&2
  echo "       $0 --example" >&2
  exit 2
fi

random() {  # N letters and digits
  local letters
  letters="$(head -c 64 /dev/urandom | base64 -w0 | tr -d '/+=')"
  printf '%s' "${letters:0:$1}"
}

# Single-quoted YAML scalars: a quote inside doubles, nothing else is special.
quoted() { printf "'%s'" "${1//\'/\'\'}"; }

secret() {  # name, then key=value pairs (a value may span lines)
  local name="$1" key value
  shift
  printf 'apiVersion: v1\nkind: Secret\nmetadata:\n  name: %s\n  namespace: %s\ntype: Opaque\nstringData:\n' \
    "$name" "$namespace"
  for pair in "$@"; do
    key="${pair%%=*}"
    value="${pair#*=}"
    if [[ "$value" == *$'\n'* ]]; then
      printf '  %s: |\n' "$key"
      printf '%s\n' "$value" | sed 's/^/    /'
    else
      printf '  %s: %s\n' "$key" "$(quoted "$value")"
    fi
  done
  printf -- '---\n'
}

database_secret() {  # database_url password
  secret skyfleet-database "url=$1" "password=$2"
}

fleet_secrets() {  # hub_auth coordinator_seed, then site=seed pairs
  secret fleet-hub-auth "hub-auth.conf=$1"
  secret fleet-coordinator "seed.nk=$2"
  shift 2
  for pair in "$@"; do
    secret "fleet-site-${pair%%=*}" "seed.nk=${pair#*=}"
  done
}

if [[ "$mode" == example ]]; then
  echo "# k8s/create-secrets.sh --example: the Secrets the manifests reference, with placeholders"
  echo "# (one fleet-site-<id> per site). Never put real values in the repository: run"
  echo "# k8s/create-secrets.sh --dev or --database-url."
  database_secret "postgresql://skyfleet:CHANGE-ME@postgres:5432/skyfleet" "CHANGE-ME"
  fleet_secrets $'authorization {\n  users = [ CHANGE-ME ]\n}' "CHANGE-ME" "example=CHANGE-ME"
  exit 0
fi

site_flags=()
for site in "${sites[@]}"; do site_flags+=(--site "$site"); done
# shellcheck disable=SC2086  # SKYFLEET may be a command with arguments
${SKYFLEET:-skyfleet} fleet credentials --out "$credentials" "${site_flags[@]}" >&2
site_seeds=()
for site in "${sites[@]}"; do site_seeds+=("$site=$(cat "$credentials/site-$site.nk")"); done

{
  if [[ "$mode" != fleet ]]; then
    password="$(random 32)"
    if [[ "$mode" == dev ]]; then
      database_url="postgresql://skyfleet:${password}@postgres:5432/skyfleet"
    fi
    database_secret "$database_url" "$password"
  fi
  fleet_secrets "$(cat "$credentials/hub-auth.conf")" "$(cat "$credentials/coordinator.nk")" \
    "${site_seeds[@]}"
} | kubectl apply -f -
