import { fileURLToPath } from 'node:url'
import { defineConfig } from 'vitest/config'

const src = (pkg: string) => fileURLToPath(new URL(`./packages/${pkg}/src/index.ts`, import.meta.url))

export default defineConfig({
  resolve: {
    alias: {
      '@keyrot/core': src('core'),
      '@keyrot/express': src('express'),
      '@keyrot/fastify': src('fastify'),
      '@keyrot/hono': src('hono'),
      '@keyrot/koa': src('koa'),
      '@keyrot/redis': src('redis'),
    },
  },
  test: {
    include: ['packages/*/src/**/*.test.ts', 'test/**/*.test.ts', 'examples/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    reporters: ['default'],
  },
})
