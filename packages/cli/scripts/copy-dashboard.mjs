#!/usr/bin/env node
// Copies the dashboard page (src/dashboard/static) to dist/dashboard, where
// the bundled server looks for it. The page needs no build step of its own.
import { cpSync, rmSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const from = fileURLToPath(new URL('../src/dashboard/static/', import.meta.url))
const to = fileURLToPath(new URL('../dist/dashboard/', import.meta.url))
rmSync(to, { recursive: true, force: true })
cpSync(from, to, { recursive: true })
