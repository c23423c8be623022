#!/usr/bin/env bash
# Reproduce every benchmark figure with the defaults:
#   envelope vs age on a 1 GiB random file, 5 interleaved reps;
#   sovereign vs plain Parsl sonar workflow, 3 interleaved reps.
# Markdown tables go to stdout, progress to stderr, JSON to benchmarks/results/.
# Extra arguments are ignored; run the scripts directly to change sizes or reps.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-$PWD/.venv/bin/python}"
# Parsl's HTEX launches interchange.py and process_worker_pool.py through PATH.
export PATH="$(dirname "$PY"):$PATH"
mkdir -p benchmarks/results
echo "## Benchmarks ($(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) CPUs, load: $(cut -d' ' -f1-3 /proc/loadavg))"
echo
"$PY" benchmarks/bench_envelope.py
echo
"$PY" benchmarks/bench_workflow.py
echo
"$PY" benchmarks/bench_merkle.py
"$PY" benchmarks/bench_ledger.py
"$PY" benchmarks/bench_release.py
"$PY" benchmarks/bench_parallel_seal.py
"$PY" benchmarks/bench_training_throughput.py
"$PY" benchmarks/bench_dispatch.py
"$PY" benchmarks/bench_slurm_first_result.py  # starts Slurm (root) if needed
