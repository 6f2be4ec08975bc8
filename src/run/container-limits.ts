/**
 * The container limits of a run: the request's `metadata.memory_mb`, `cpus`
 * and `pids_limit` checked against the admin maxima of the `docker` settings,
 * defaults filled in. Pure.
 */
import type { Config } from "../config/schema.ts";
import { mib } from "../container/run-container.ts";
import type { ContainerLimits } from "../container/types.ts";
import { ValidationError } from "../errors.ts";
import type { CreateRunBody } from "../protocol/requests.ts";

/**
 * Returns the limits, or null when the run executes on the host.
 * @param dockerAvailable whether this server has a container engine set up
 * @throws ValidationError `limit_exceeded` above a maximum, `isolation_unavailable` without docker,
 *   `validation_failed` for limits on a host run
 */
export function resolveContainerLimits(md: CreateRunBody["metadata"], docker: Config["docker"] | undefined, dockerAvailable: boolean): ContainerLimits | null {
  const isolation = md.isolation ?? docker?.default_isolation ?? "none";
  const asked = (["memory_mb", "cpus", "pids_limit"] as const).filter((k) => md[k] !== undefined);
  if (isolation !== "docker") {
    if (asked.length) throw new ValidationError(`metadata.${asked[0]} needs metadata.isolation "docker"`, { field: `metadata.${asked[0]}` });
    return null;
  }
  if (!docker || !dockerAvailable) throw new ValidationError("docker isolation is not configured on this server", { field: "metadata.isolation" }, "isolation_unavailable");
  const within = (field: "memory_mb" | "cpus" | "pids_limit", max: number) => {
    const v = md[field];
    if (v !== undefined && v > max) throw new ValidationError(`metadata.${field} must be at most ${max}, got ${v}`, { field: `metadata.${field}`, value: v, max }, "limit_exceeded");
    return v;
  };
  const memoryMb = within("memory_mb", docker.max_memory_mb) ?? docker.memory_mb;
  const cpus = within("cpus", docker.max_cpus) ?? docker.cpus;
  const pids = within("pids_limit", docker.max_pids_limit) ?? docker.pids_limit;
  return { memoryBytes: mib(memoryMb), nanoCpus: Math.round(cpus * 1e9), pidsLimit: pids };
}
