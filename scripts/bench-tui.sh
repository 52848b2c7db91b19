#!/usr/bin/env bash
# Training throughput with the TUI open against `mednist train` headless: the same learner
# (resnet34, batch 64, 64 px), the same embedded lesson data and split, one epoch each,
# alternating, ROUNDS times. The TUI runs in a detached tmux session at 120x40 and redraws
# its live table, chart and gauge as it would on screen.
#
# On a small shared machine run-to-run noise is larger than the 2% asked of the TUI, so the
# script also prints the UI's own share of the process's CPU time (its threads are named
# `mednist` and `mednist-images`; the step runs on `mednist-kernel` and LibTorch's threads).
#
#     scripts/bench-tui.sh [ROUNDS]        # MEDNIST=path/to/mednist to pick the binary
set -euo pipefail
bin="${MEDNIST:-target/release/mednist}"
rounds="${1:-2}"
session="mednist-bench-$$"
work="$(mktemp -d)"
trap 'tmux kill-session -t "$session" 2>/dev/null || true; rm -rf "$work"' EXIT

"$bin" --workdir "$work/base" fetch >/dev/null 2>&1
"$bin" --workdir "$work/base" split >/dev/null 2>&1
fresh() { rm -rf "$work/ws" && cp -r "$work/base" "$work/ws"; }
# img/s over the epoch's training steps, and the epoch's seconds, from an epoch row (JSON).
figures() { python3 -c 'import json,sys; r=json.loads(sys.stdin.read()); print("%.1f %.1f" % (r["train_images_per_second"], r["seconds"]))'; }

for round in $(seq "$rounds"); do
    fresh
    read -r headless headless_s < <("$bin" --workdir "$work/ws" train --epochs 1 --json 2>/dev/null \
        | grep '"event":"epoch"' | figures)
    fresh
    tmux new-session -d -s "$session" -x 120 -y 40 "$bin --workdir $work/ws"
    sleep 2
    tmux send-keys -t "$session" 7 Left Left Enter
    log="$work/ws/logs/tui.log"
    until grep -q "epoch row" "$log" 2>/dev/null; do sleep 1; done
    read -r tui tui_s < <(grep "epoch row" "$log" | sed 's/.*epoch row //' | figures)
    pid="$(tmux list-panes -t "$session" -F '#{pane_pid}')"
    read -r ui_ticks all_ticks < <(for task in /proc/"$pid"/task/*; do
        echo "$(cat "$task/comm") $(cut -d' ' -f14,15 "$task/stat")"
    done | awk '{ t = $2 + $3; all += t; if ($1 == "mednist" || $1 == "mednist-images") ui += t } END { print ui + 0, all }')
    tmux send-keys -t "$session" q
    sleep 1
    tmux kill-session -t "$session" 2>/dev/null || true
    python3 -c "print(f'round $round: headless $headless img/s ($headless_s s epoch), TUI $tui img/s ($tui_s s epoch), TUI/headless {$tui/$headless:.3f}; UI threads {100*$ui_ticks/$all_ticks:.2f}% of the CPU time')"
done
