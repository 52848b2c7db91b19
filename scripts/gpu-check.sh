#!/usr/bin/env bash
# The device check for a machine with NVIDIA GPUs and a PyTorch install but no package
# registry (issues 13 and 16). Runs a mednist binary built elsewhere (README: "A binary for another
# machine") and writes every figure to one summary file. Under 8 minutes on one H200.
#
#   scripts/gpu-check.sh [MEDNIST_BINARY]
#
# Environment:
#   TORCH_PYTHON   the Python whose torch the binary runs on (default /opt/torch/.venv/bin/python);
#                  its torch/lib goes on LD_LIBRARY_PATH
#   REFERENCE      torch_reference.py for the PyTorch figures (default ../shared/bench/torch_reference.py;
#                  skipped with a line when absent or when torchvision is missing)
#   DEVICE         the device to check (default cuda; cpu runs the same steps, to test this script)
#   IMAGES         images in the throughput dataset, copies of the lesson's (default 50000)
#   BATCH_SIZES    default "64 256 512";  PRECISIONS  default "fp32 bf16"
#   OUT            where the summary and logs go (default ./gpu-check-out)
set -uo pipefail

mednist="$(realpath "${1:-target/release/mednist}")"
torch_python="${TORCH_PYTHON:-/opt/torch/.venv/bin/python}"
reference="${REFERENCE:-../shared/bench/torch_reference.py}"
device="${DEVICE:-cuda}"
images="${IMAGES:-50000}"
batch_sizes="${BATCH_SIZES:-64 256 512}"
precisions="${PRECISIONS:-fp32 bf16}"
out="$(mkdir -p "${OUT:-gpu-check-out}" && realpath "${OUT:-gpu-check-out}")"
summary="$out/summary.txt"
work="$(mktemp -d)"
trap 'rm -rf "$work"; [[ -n "${sampler:-}" ]] && kill "$sampler" 2>/dev/null' EXIT
failures=0

say() { echo "$*" | tee -a "$summary"; }
fail() { say "FAIL: $*"; failures=$((failures + 1)); }
# The last JSON line of `file` whose "event" is `event`, field `field` (python: no jq here).
json_field() {
    "$torch_python" - "$@" <<'PY'
import json, sys
path, event, field = sys.argv[1:4]
value = None
for line in open(path):
    line = line.strip()
    if line.startswith("{"):
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("event") == event and field in record:
            value = record[field]
print("" if value is None else value)
PY
}
# Mean GPU utilisation (%) sampled while `$@` runs, on stdout; the command's status is kept.
with_utilisation() {
    local samples="$work/utilisation.$$" status
    : >"$samples"
    if command -v nvidia-smi >/dev/null && [[ "$device" == cuda* ]]; then
        nvidia-smi --query-gpu=utilization.gpu --format=csv,noheader,nounits -lms 200 >"$samples" 2>/dev/null &
        sampler=$!
    fi
    "$@"
    status=$?
    [[ -n "${sampler:-}" ]] && { kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null; sampler=; }
    utilisation="$(awk -F, '{ sum += $1; n++ } END { if (n) printf "%.0f", sum / n; else print "n/a" }' "$samples")"
    return $status
}

torch_lib="$("$torch_python" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))' 2>/dev/null)"
[[ -n "$torch_lib" ]] && export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
: >"$summary"
say "== mednist gpu-check $(date -u +%FT%TZ) on $(hostname), device $device"
say "binary: $mednist"
say "torch: $("$torch_python" -c 'import torch; print(torch.__version__, "cuda", torch.version.cuda)' 2>&1 | tail -n 1)"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | sed 's/^/gpu: /' | tee -a "$summary"
say "cpu: $(lscpu | sed -n 's/^Model name: *//p' | head -n 1), $(nproc) cores"

m=("$mednist" --workdir "$work/ws")
say "== doctor"
"${m[@]}" doctor 2>&1 | tee -a "$summary" || fail "doctor"
"${m[@]}" doctor --json >"$out/doctor.json" 2>>"$out/doctor.err" || true
"$torch_python" -c 'import json, sys; t = json.load(open(sys.argv[1]))["cuda"]["smoke_test"]; print("smoke_test:", t)' "$out/doctor.json" 2>&1 | tee -a "$summary"

say "== the lesson, 3 epochs on $device, then resumed for one more"
"${m[@]}" fetch >/dev/null 2>&1 && "${m[@]}" split --valid-pct 0.2 --seed 42 >/dev/null 2>&1 || fail "fetch/split"
start=$SECONDS
"${m[@]}" train --epochs 3 --device "$device" --json >"$out/lesson.jsonl" 2>"$out/lesson.err" || fail "lesson train: $(tail -n 1 "$out/lesson.err")"
error_rate="$(json_field "$out/lesson.jsonl" epoch error_rate)"
say "lesson: error_rate $error_rate after 3 epochs, $((SECONDS - start)) s wall (goal <= 0.011), precision $(json_field "$out/lesson.jsonl" train_started precision)"
"$torch_python" -c "import sys; sys.exit(0 if float('${error_rate:-1}') <= 0.011 else 1)" || fail "lesson error_rate $error_rate > 0.011"
"${m[@]}" train --epochs 1 --device "$device" --json >"$out/lesson-resume.jsonl" 2>"$out/lesson-resume.err" || fail "resume"
say "resumed: epoch $(json_field "$out/lesson-resume.jsonl" epoch epoch), error_rate $(json_field "$out/lesson-resume.jsonl" epoch error_rate)"

say "== interpret, lr-find, export/predict: $device against cpu"
for where in "$device" cpu; do
    "${m[@]}" interpret --device "$where" --json >"$out/interpret-$where.json" 2>>"$out/interpret.err" || fail "interpret on $where"
    "${m[@]}" lr-find --device "$where" --json >"$out/lr-find-$where.json" 2>>"$out/lr-find.err" || fail "lr-find on $where"
done
"$torch_python" - "$out" "$device" <<'PY' | tee -a "$summary"
import json, sys
out, device = sys.argv[1:3]
def last_json(path):
    text = open(path).read()
    start = text.find("{")
    return json.loads(text[start:]) if start >= 0 else {}
for name in ("interpret", "lr-find"):
    try:
        a, b = last_json(f"{out}/{name}-{device}.json"), last_json(f"{out}/{name}-cpu.json")
    except Exception as error:
        print(f"{name}: cannot compare ({error})"); continue
    if name == "interpret":
        agree = "agree" if a.get("confusion") == b.get("confusion") else "differ"
        print(f"interpret: error_rate {device} {a.get('error_rate')} cpu {b.get('error_rate')}; confusion matrices {agree}")
    else:
        print(f"lr-find: suggestions {device} {a.get('suggestions')} cpu {b.get('suggestions')}")
PY
"${m[@]}" export "$work/model.pkl" >/dev/null 2>>"$out/export.err" || fail "export"
sample="$(find "$work/ws/dataset" -name '*.jpeg' | head -n 200)"
for where in "$device" cpu; do
    # shellcheck disable=SC2086
    "${m[@]}" predict --model "$work/model.pkl" --device "$where" --json $sample >"$out/predict-$where.json" 2>>"$out/predict.err" || fail "predict on $where"
done
"$torch_python" - "$out/predict-$device.json" "$out/predict-cpu.json" "$device" <<'PY' | tee -a "$summary" || fail "predict: $device and cpu disagree (see $out/predict-*.json)"
import json, sys
here, cpu, device = sys.argv[1:4]
top = lambda path: [(p["file"], p["classes"][0]["class"] if p.get("classes") else None) for p in json.load(open(path))]
a, b = top(here), top(cpu)
same = sum(x == y for x, y in zip(a, b))
print(f"predict: {same} of {len(b)} images get the same class on {device} and cpu")
sys.exit(0 if a and a == b else 1)
PY

say "== throughput: one epoch of $images images (copies of the lesson's)"
big="$work/big"
for class_dir in "$work/ws/dataset"/*/; do
    class="$(basename "$class_dir")"
    mkdir -p "$big/$class"
    files=("$class_dir"*)
    per_class=$((images / 6))
    for ((i = 0; i < per_class; i++)); do
        ln "${files[i % ${#files[@]}]}" "$big/$class/$i.jpeg" 2>/dev/null || cp "${files[i % ${#files[@]}]}" "$big/$class/$i.jpeg"
    done
done
b=("$mednist" --workdir "$work/big-ws")
"${b[@]}" fetch --source "$big" >/dev/null 2>&1 && "${b[@]}" split --valid-pct 0.2 --seed 42 >/dev/null 2>&1 || fail "big dataset"
printf '%-6s %-5s %12s %6s %14s %10s\n' bs prec "train img/s" "gpu %" "data wait s" "epoch s" | tee -a "$summary"
for bs in $batch_sizes; do
    for precision in $precisions; do
        log="$out/big-$bs-$precision.jsonl"
        with_utilisation "${b[@]}" train --fresh --epochs 1 --bs "$bs" --precision "$precision" --device "$device" --json >"$log" 2>"$log.err" \
            || fail "train bs $bs $precision: $(tail -n 1 "$log.err")"
        printf '%-6s %-5s %12.0f %6s %14.2f %10.1f\n' "$bs" "$precision" \
            "$(json_field "$log" epoch train_images_per_second)" "$utilisation" \
            "$(json_field "$log" epoch data_wait_seconds)" "$(json_field "$log" epoch seconds)" | tee -a "$summary"
    done
done

say "== PyTorch on the same machine and data (torch_reference.py)"
if [[ ! -f "$reference" ]]; then
    say "skipped: $reference not found (set REFERENCE)"
elif ! "$torch_python" -c 'import torchvision' 2>/dev/null; then
    say "skipped: torchvision is not installed in $torch_python"
else
    for bs in $batch_sizes; do
        for precision in $precisions; do
            amp=$([[ "$precision" == fp32 ]] && echo none || echo "$precision")
            "$torch_python" "$reference" --data "$big" --epochs 1 --bs "$bs" --arch resnet34 --head fastai \
                --device "$device" --amp "$amp" --threads "$(nproc)" >"$out/reference-$bs-$precision.txt" 2>&1 \
                || fail "reference bs $bs $precision"
            say "reference bs $bs $precision: $(grep -o 'train img/s.*' "$out/reference-$bs-$precision.txt" | tail -n 1)"
        done
    done
fi

say "== torchrun: data-parallel training, one process per GPU (Gloo)"
gpus="$([[ "$device" == cuda* ]] && (nvidia-smi -L 2>/dev/null | wc -l) || echo 2)"
for ranks in $(seq 1 "${gpus:-1}"); do
    log="$out/torchrun-$ranks.jsonl"
    "$torch_python" -m torch.distributed.run --standalone --nproc_per_node "$ranks" --no-python \
        "${b[@]}" train --fresh --epochs 1 --bs 256 --device "$device" --json >"$log" 2>"$log.err" \
        || fail "torchrun x $ranks: $(tail -n 1 "$log.err")"
    per_rank="$(json_field "$log" epoch train_images_per_second)"
    say "torchrun x $ranks: epoch $(json_field "$log" epoch seconds) s, $(awk -v r="$ranks" -v x="${per_rank:-0}" 'BEGIN { printf "%.0f", r * x }') img/s in all, error_rate $(json_field "$log" epoch error_rate)"
done

say "== $failures failure(s); summary in $summary"
exit $((failures > 0))
