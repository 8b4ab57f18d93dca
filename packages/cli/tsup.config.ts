import { defineConfig } from 'tsup'

// The importable server (ESM + CJS + types) and the `keyrot` executable
// (dist/bin.js, ESM only, with the server stack in chunks loaded only by
// `keyrot serve`). esbuild keeps bin.ts's `#!/usr/bin/env node` line and tsup
// marks a file that starts with one as executable. The configs build in
// parallel, so only the bin build cleans, and it keeps the library's files.
export default defineConfig([
  {
    entry: { index: 'src/index.ts' },
    format: ['esm', 'cjs'],
    // import.meta.url in the CommonJS build too (the dashboard finds its page files with it).
    shims: true,
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
    clean: ['!index.*'],
    target: 'node20',
    platform: 'node',
  },
])
