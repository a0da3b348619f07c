#!/usr/bin/env bash
# make demo: pipeline on the bundled MovieTweetings data -> retrieval-serve on
# the pushed model -> top-10 for a real user over gRPC -> stop the server.
set -euo pipefail
out=${1:-demo-output}
port=${2:-8500}
user=${3:-9403}
data=data/movietweetings-100k/ratings.dat
bin=.venv/bin
export TF_CPP_MIN_LOG_LEVEL=2 PYTHONWARNINGS=ignore
mkdir -p "$out"

echo "== 1/3 pipeline on $data -> $out (component logs: $out/pipeline.log)"
# configs/movietweetings.yaml joins movies.dat (titles, genres) as the item catalog.
if ! "$bin/retrieval-pipeline" --data "$data" --config configs/movietweetings.yaml \
    --output "$out" 2> "$out/pipeline.log"; then
  tail -40 "$out/pipeline.log"; echo "retrieval-pipeline failed; full log: $out/pipeline.log"; exit 1
fi

model_dir="$out/serving/retrieval"
[ -d "$model_dir" ] && [ -n "$(ls "$model_dir")" ] || { echo "no model was pushed to $model_dir"; exit 1; }

echo "== 2/3 retrieval-serve on 127.0.0.1:$port"
log="$out/retrieval-serve.log"
"$bin/retrieval-serve" --port "$port" --model_name retrieval --model_base_path "$model_dir" > "$log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
  grep -q "retrieval-serve: serving" "$log" && break
  kill -0 $server 2>/dev/null || { cat "$log"; echo "retrieval-serve exited"; exit 1; }
  sleep 1
done
grep "retrieval-serve: serving" "$log" || { cat "$log"; echo "retrieval-serve did not start"; exit 1; }

# The user's 10 most recent ratings, oldest first, as the request history.
history=$(awk -F'::' -v u="$user" '$1 == u {print $4 "\t" $2}' "$data" | sort -n | tail -10 | cut -f2 | paste -sd, -)
echo "== 3/3 top-10 for user $user (history: $history)"
"$bin/retrieval-query" --server "127.0.0.1:$port" --user_id "$user" --history "$history" --k 10 \
  --catalog data/movietweetings-100k/movies.dat 2> "$out/retrieval-query.log" || {
  cat "$out/retrieval-query.log"; exit 1; }
last=${history##*,}
echo "== items related to $last (the related_items signature)"
"$bin/retrieval-query" --server "127.0.0.1:$port" --related_to "$last" --k 5 \
  --catalog data/movietweetings-100k/movies.dat 2>> "$out/retrieval-query.log" || {
  cat "$out/retrieval-query.log"; exit 1; }
