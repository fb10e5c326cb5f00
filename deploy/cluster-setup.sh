#!/usr/bin/env bash
# One-shot cluster formation for docker-compose.yml, run by the `cluster-setup` service after
# all nodes report healthy. Follows "Cluster Set Up" of the CouchDB 3.5 documentation
# (POST /_cluster_setup: enable_cluster on the coordinator for each remote node, add_node,
# finish_cluster). Idempotent: exits 0 at once when every node is already a cluster member.
#
# Needs: COUCHDB_USER, COUCHDB_PASSWORD (from deploy/production.env) and CLUSTER_NODES
# (space-separated node host names, the first is the coordinator).
set -euo pipefail

: "${COUCHDB_USER:?COUCHDB_USER is not set}"
: "${COUCHDB_PASSWORD:?COUCHDB_PASSWORD is not set}"
: "${CLUSTER_NODES:?CLUSTER_NODES is not set}"

read -r -a nodes <<<"$CLUSTER_NODES"
coordinator="${nodes[0]}"
auth="$COUCHDB_USER:$COUCHDB_PASSWORD"

api() {  # api HOST METHOD PATH [JSON]
  local host="$1" method="$2" path="$3" body="${4:-}"
  curl -fsS -u "$auth" -X "$method" -H 'Content-Type: application/json' \
    ${body:+--data "$body"} "http://$host:5984$path"
}

json_string() {  # quote a shell string as a JSON string
  printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/"/' -e 's/$/"/'
}

members="$(api "$coordinator" GET /_membership)"
is_member() { grep -q "\"couchdb@$1\"" <<<"${members#*cluster_nodes}"; }
joined=0
for node in "${nodes[@]}"; do
  if is_member "$node"; then joined=$((joined + 1)); fi
done
if (( joined == ${#nodes[@]} )); then
  echo "cluster already formed: ${#nodes[@]} nodes"
  exit 0
fi

user_json="$(json_string "$COUCHDB_USER")"
password_json="$(json_string "$COUCHDB_PASSWORD")"
count="${#nodes[@]}"

api "$coordinator" POST /_cluster_setup \
  "{\"action\":\"enable_cluster\",\"bind_address\":\"0.0.0.0\",\"username\":$user_json,\"password\":$password_json,\"node_count\":\"$count\"}" || true
for node in "${nodes[@]:1}"; do
  if is_member "$node"; then echo "$node is already a member"; continue; fi
  echo "joining $node"
  api "$coordinator" POST /_cluster_setup \
    "{\"action\":\"enable_cluster\",\"bind_address\":\"0.0.0.0\",\"username\":$user_json,\"password\":$password_json,\"port\":5984,\"node_count\":\"$count\",\"remote_node\":\"$node\",\"remote_current_user\":$user_json,\"remote_current_password\":$password_json}"
  api "$coordinator" POST /_cluster_setup \
    "{\"action\":\"add_node\",\"host\":\"$node\",\"port\":5984,\"username\":$user_json,\"password\":$password_json}"
done
api "$coordinator" POST /_cluster_setup '{"action":"finish_cluster"}'
api "$coordinator" GET /_cluster_setup
echo "cluster formed: $count nodes"
