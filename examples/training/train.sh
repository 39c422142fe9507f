#!/usr/bin/env bash
# A training script that stops — and stops billing — when anything fails (made by us; see ABOUT.md).
set -euo pipefail
stop_pod() { runpodctl stop pod "$RUNPOD_POD_ID" || echo "could not stop pod $RUNPOD_POD_ID"; }
trap stop_pod EXIT  # success or failure: the pod stops billing when the script ends

curl -fsSL --retry 3 -o /workspace/data.jsonl "$DATASET_URL"
python3 -m pip install -q "trl>=0.12" "datasets>=3"
accelerate launch train.py --method dpo --data /workspace/data.jsonl --max-seq-length 2048
