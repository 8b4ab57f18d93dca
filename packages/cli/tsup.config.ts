import { defineConfig } from 'tsup'

// The importable server (ESM + CJS + types) and the `keyrot` executable
// (dist/bin.js, ESM only). esbuild keeps bin.ts's `#!/usr/bin/env node` line
// and tsup marks a file that starts with one as executable. The build script
// empties dist first: two configs cleaning one folder in parallel could race.
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
