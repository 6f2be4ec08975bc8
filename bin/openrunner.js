#!/usr/bin/env node
// The npm `bin` entry: registers tsx's ESM loader so the TypeScript sources run
// as they are, then hands over to the command line (src/main.ts). The package's
// own tsconfig is used, never one found in the caller's working directory.
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { register } from "tsx/esm/api";

const tsconfig = fileURLToPath(new URL("../tsconfig.json", import.meta.url));
register({ tsconfig: existsSync(tsconfig) ? tsconfig : false });
await import("../src/main.ts");
