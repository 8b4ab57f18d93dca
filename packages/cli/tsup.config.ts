import { defineConfig } from 'tsup'

// The importable server (ESM + CJS + types) and the `keyrot` executable
// (dist/bin.js, ESM only). esbuild keeps bin.ts's `#!/usr/bin/env node` line
// and tsup marks a file that starts with one as executable. Neither config
// cleans dist: two configs cleaning one folder in parallel would race, and
// files rewritten in place keep the binary usable during a rebuild.
export default defineConfig([
  {
    entry: { index: 'src/index.ts' },
    format: ['esm', 'cjs'],
    dts: true,
    sourcemap: true,
    clean: false,
    target: 'node20',
    platform: 'node',
  },
  {
    entry: { bin: 'src/bin.ts' },
    format: ['esm'],
    sourcemap: true,
    clean: false,
    target: 'node20',
    platform: 'node',
  },
])
