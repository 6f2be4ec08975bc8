/**
 * Shell scripts the container client runs inside containers (busybox sh,
 * tr, grep and kill suffice). Each exec is marked with `OPENRUNNER_EXEC_ID` in
 * its environment, inherited by its children, so a kill reaches a whole exec's
 * tree (also children that start their own session) and no other exec.
 */
export const MARKER_ENV = "OPENRUNNER_EXEC_ID";

/** Sends `$1` to every process whose environment holds `OPENRUNNER_EXEC_ID=$2`; prints how many. */
export const KILL_SCRIPT = `sig="$1"; m="${MARKER_ENV}=$2"; n=0
for d in /proc/[0-9]*; do
  p="\${d#/proc/}"
  [ "$p" = "$$" ] && continue
  if tr '\\0' '\\n' < "$d/environ" 2>/dev/null | grep -qxF "$m"; then kill -s "$sig" "$p" 2>/dev/null && n=$((n+1)); fi
done
echo "$n"`;

/** Prints the memory cgroup's `oom_kill N` line (cgroup v2, then v1). */
export const OOM_SCRIPT = "cat /sys/fs/cgroup/memory.events 2>/dev/null || cat /sys/fs/cgroup/memory/memory.oom_control 2>/dev/null";

/**
 * Sends `$1` to every process whose environment holds the exact `NAME=value` entry `$2`
 * (e.g. `OPENRUNNER_RUN_ID=run_…`, set on every exec of a run); prints how many.
 */
export const KILL_BY_ENV_SCRIPT = `sig="$1"; m="$2"; n=0
for d in /proc/[0-9]*; do
  p="\${d#/proc/}"
  [ "$p" = "$$" ] && continue
  if tr '\\0' '\\n' < "$d/environ" 2>/dev/null | grep -qxF "$m"; then kill -s "$sig" "$p" 2>/dev/null && n=$((n+1)); fi
done
echo "$n"`;
