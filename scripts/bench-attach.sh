#!/usr/bin/env bash
# What following a detached training costs: `mednist train --detach` trains resnet34 (batch
# 64, 64 px) on the embedded lesson data for EPOCHS epochs while the app, opened in a tmux
# session at 120x40, shows it live in its Train pane (attached: it reads the run's
# events.jsonl every 0.3 s and redraws the table, chart and batch gauge). Prints
#   - the app's CPU time over the run, as a share of one core and of the training's own CPU
#     time (the watcher competes with the training for the same cores);
#   - the event log the run wrote: bytes per batch event and in all.
# The time an event costs the training to write is `cargo bench --bench event_log`.
#
#     scripts/bench-attach.sh [EPOCHS]        # MEDNIST=path/to/mednist to pick the binary
set -euo pipefail
bin="${MEDNIST:-target/release/mednist}"
epochs="${1:-1}"
session="mednist-attach-bench-$$"
work="$(mktemp -d)"
trap 'tmux kill-session -t "$session" 2>/dev/null || true; rm -rf "$work"' EXIT
ws="$work/ws"
"$bin" --workdir "$ws" fetch >/dev/null 2>&1
"$bin" --workdir "$ws" split >/dev/null 2>&1

# Clock ticks (user + system, all threads) a live process has used so far.
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
status() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["status"])' "$ws/runs/bench/run.json"; }

pid="$("$bin" --workdir "$ws" --json train --detach --name bench --arch resnet34 --device cpu --epochs "$epochs" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])')"
tmux new-session -d -s "$session" -x 120 -y 40 "$bin --workdir $ws --no-graphics"
app="$(tmux list-panes -t "$session" -F '#{pane_pid}')"
# The pane's shell may have started the app as its child instead of becoming it.
[ "$(cat "/proc/$app/comm")" = mednist ] || app="$(pgrep -P "$app" -x mednist)"
until grep -q "attaching to run bench" "$ws/logs/tui.log" 2>/dev/null; do sleep 0.2; done
tmux send-keys -t "$session" 7
started="$(date +%s.%N)"
app_start="$(ticks "$app")"
train_start="$(ticks "$pid")"
# The training's ticks are read while it lives; it exits right after its run ends.
train_ticks="$train_start"
while [ "$(status)" = running ]; do
    train_ticks="$(ticks "$pid" 2>/dev/null || echo "$train_ticks")"
    sleep 0.5
done
ended="$(date +%s.%N)"
app_end="$(ticks "$app")"
tmux send-keys -t "$session" q
events="$ws/runs/bench/events.jsonl"
python3 - "$events" "$started" "$ended" "$app_start" "$app_end" "$train_start" "$train_ticks" "$(getconf CLK_TCK)" "$(status)" <<'PY'
import json, sys
events, started, ended, app0, app1, train0, train1, hz, status = sys.argv[1:]
wall = float(ended) - float(started)
app = (int(app1) - int(app0)) / int(hz)
train = (int(train1) - int(train0)) / int(hz)
lines = open(events, "rb").read().splitlines()
batches = [line for line in lines if json.loads(line)["event"] == "batch"]
print(f"run {status}: {wall:.1f} s while attached, the training used {train:.1f} CPU s")
print(f"the app (watcher) used {app:.2f} CPU s: {100 * app / wall:.2f}% of one core, "
      f"{100 * app / train:.2f}% of the training's CPU time")
print(f"event log: {len(batches)} batch events, {sum(map(len, batches)) / len(batches) + 1:.0f} bytes each; "
      f"{sum(map(len, lines)) + len(lines)} bytes in {len(lines)} events")
PY
