/**
 * `openrunner image build [--offline] [--tag openrunner-agent:latest]`: builds
 * the agent image in the Docker engine at DOCKER_HOST (or
 * /var/run/docker.sock) with `buildAgentImage` (src/container/image.ts).
 * `--offline` builds FROM scratch from this machine's node and busybox, for
 * engines without a registry; otherwise `docker/Dockerfile` (node:20-slim and
 * the agent CLIs). `--desktop` builds the desktop image instead (`buildDesktopImage`,
 * src/container/desktop-image.ts: debootstrap from the configured mirror, then import;
 * `current …` when its content hash says it is up to date, `--force` rebuilds).
 * Prints the build's steps, then one `built …` line.
 */
import type { CliContext } from "./context.ts";
import { printLine } from "./context.ts";

/** Options of {@link runImageBuild}. */
export interface ImageBuildOptions {
  offline?: boolean;
  tag?: string;
  /** `--agents`: with --offline, the agent CLIs to copy from `.agents/bin`, comma-separated, or `none` (default: claude,claude-code-acp). */
  agents?: string;
  /** Print every line of build output (default true). */
  verbose?: boolean;
  /** `--desktop`: the desktop image (Debian's Xvfb, VNC, noVNC, chromium, PulseAudio, ibus) from debootstrap, offline. */
  desktop?: boolean;
  /** With `--desktop`: rebuild even when the image's content hash is current. */
  force?: boolean;
}

/**
 * Runs `image build`; returns the exit code (0 built, 1 failed: engine down, missing host files, build error).
 * @example openrunner image build --offline --tag openrunner-agent:latest
 */
export async function runImageBuild(ctx: CliContext, opts: ImageBuildOptions): Promise<number> {
  // Imported here: the other commands never load dockerode.
  const [{ createDockerClient }, { buildAgentImage, DEFAULT_IMAGE_TAG }] = await Promise.all([import("../container/client.ts"), import("../container/image.ts")]);
  try {
    const client = createDockerClient({ ...(ctx.env.DOCKER_HOST ? { dockerHost: ctx.env.DOCKER_HOST } : {}) });
    await client.ping();
    if (opts.desktop) {
      const { buildDesktopImage } = await import("../container/desktop-image.ts");
      const img = await buildDesktopImage({ client, ...(opts.tag ? { tag: opts.tag } : {}), ...(opts.force ? { force: true } : {}), ...(opts.verbose === false ? {} : { onProgress: (line: string) => printLine(ctx, line) }) });
      printLine(ctx, `${img.cached ? "current" : "built"} ${img.tag} (${img.id.slice(0, 19)}), ${(img.sizeBytes / 1e6).toFixed(1)} MB, in ${(img.durationMs / 1000).toFixed(1)} s`);
      return 0;
    }
    const tag = opts.tag ?? DEFAULT_IMAGE_TAG;
    const img = await buildAgentImage({
      client,
      offline: opts.offline ?? false,
      tag,
      ...(opts.agents !== undefined ? { agents: opts.agents === "none" ? [] : opts.agents.split(",").map((a) => a.trim()).filter(Boolean) } : {}),
      onSkip: (message: string) => printLine(ctx, `note: ${message}`),
      ...(opts.verbose === false ? {} : { onProgress: (line: string) => printLine(ctx, line) }),
    });
    printLine(ctx, `built ${img.tag} (${img.id.slice(0, 19)}), ${(img.sizeBytes / 1e6).toFixed(1)} MB, in ${(img.durationMs / 1000).toFixed(1)} s`);
    return 0;
  } catch (err) {
    ctx.stderr.write(`error: image build failed: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
}
