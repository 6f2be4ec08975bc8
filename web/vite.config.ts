/**
 * Build of the dashboard (`npm run build:web` -> `web/dist`, served at `/` by
 * `src/api/routes/web.ts`). The page imports the API client and its types only
 * as `openrunner/client`, aliased here to the repository's `src/client/`.
 * Everything is bundled (no CDN, no inline script or style, so the server's
 * strict Content-Security-Policy holds).
 */
import path from "node:path";
import { fileURLToPath } from "node:url";
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

const here = path.dirname(fileURLToPath(import.meta.url));

export default defineConfig({
  root: here,
  base: "/",
  plugins: [react()],
  resolve: { alias: { "openrunner/client": path.resolve(here, "../src/client/index.ts") } },
  build: {
    outDir: path.resolve(here, "dist"),
    emptyOutDir: true,
    assetsInlineLimit: 0,
    sourcemap: false,
    target: "es2022",
  },
});
