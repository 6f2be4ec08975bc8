/**
 * Builds the agent image from the command line until `openrunner image build`
 * is wired in src/cli (it calls the same `buildAgentImage`):
 *
 *   node --import tsx docker/build-image.ts [--offline] [--tag openrunner-agent:latest]
 *
 * Talks to the engine at DOCKER_HOST or /var/run/docker.sock. Exit code 1 on failure.
 */
import { createDockerClient } from "../src/container/client.ts";
import { buildAgentImage, DEFAULT_IMAGE_TAG } from "../src/container/image.ts";

const args = process.argv.slice(2);
let offline = false;
let tag = DEFAULT_IMAGE_TAG;
for (let i = 0; i < args.length; i++) {
  const a = args[i]!;
  if (a === "--offline") offline = true;
  else if (a === "--tag" && args[i + 1]) tag = args[++i]!;
  else if (a.startsWith("--tag=")) tag = a.slice("--tag=".length);
  else {
    console.error(`build-image: unknown argument ${JSON.stringify(a)}; usage: build-image.ts [--offline] [--tag NAME:TAG]`);
    process.exit(2);
  }
}

try {
  const client = createDockerClient({ dockerHost: process.env.DOCKER_HOST });
  await client.ping();
  const img = await buildAgentImage({ client, offline, tag, onProgress: (line) => console.log(line) });
  console.log(`built ${img.tag} (${img.id.slice(0, 19)}), ${(img.sizeBytes / 1e6).toFixed(1)} MB, in ${(img.durationMs / 1000).toFixed(1)} s`);
} catch (err) {
  console.error(`build-image: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}
