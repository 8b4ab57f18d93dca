import { createHash } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Request, Response } from 'express'
import { z } from 'zod'
import { defineRoute, type RouteSpec } from '../server/route-spec.js'
import { errorSchema } from '../server/schemas.js'

/**
 * Everything the page loads comes from this server: no inline script or
 * style, no other origin, no framing. The admin key travels only in the
 * `Authorization` header of `fetch` calls to the same origin.
 */
export const DASHBOARD_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "font-src 'none'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ')

const CONTENT_TYPES: Record<string, string> = {
  'index.html': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'style.css': 'text/css; charset=utf-8',
  'favicon.svg': 'image/svg+xml',
}

interface PageFile {
  body: Buffer
  contentType: string
  etag: string
}

/**
 * The folder holding index.html, app.js and style.css: `static/` beside this
 * file when run from the sources, `dashboard/` beside the bundle in `dist`
 * (the build copies it there).
 */
export function dashboardDirectory(): string {
  const here = dirname(fileURLToPath(import.meta.url))
  const candidates = [join(here, 'static'), join(here, 'dashboard')]
  const found = candidates.find((directory) => existsSync(join(directory, 'index.html')))
  if (!found) {
    throw new Error(`keyrot dashboard: its files are missing (looked in ${candidates.join(' and ')}); rebuild @keyrot/cli, or pass { dashboard: false } to createServer`)
  }
  return found
}

function loadFiles(directory: string): Map<string, PageFile> {
  const files = new Map<string, PageFile>()
  for (const [name, contentType] of Object.entries(CONTENT_TYPES)) {
    const body = readFileSync(join(directory, name))
    files.set(name, { body, contentType, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"` })
  }
  return files
}

function send(file: PageFile, req: Request, res: Response): void {
  res.setHeader('content-security-policy', DASHBOARD_CSP)
  res.setHeader('x-content-type-options', 'nosniff')
  res.setHeader('referrer-policy', 'no-referrer')
  res.setHeader('x-frame-options', 'DENY')
  res.setHeader('cross-origin-opener-policy', 'same-origin')
  res.setHeader('cross-origin-resource-policy', 'same-origin')
  // Revalidated on every load (a 304 costs nothing), so an upgrade shows at once.
  res.setHeader('cache-control', 'no-cache')
  res.setHeader('etag', file.etag)
  if (req.headers['if-none-match'] === file.etag) {
    res.status(304).end()
    return
  }
  res.status(200).type(file.contentType).send(file.body)
}

/**
 * The dashboard page as routes: `/dashboard/` serves index.html (and
 * `/dashboard` redirects there, so the page's relative links work behind a
 * path prefix); `/dashboard/{file}` serves its script, stylesheet and icon.
 * Files are read once, here. Being routes, they are in the OpenAPI document
 * like everything else the server answers.
 */
export function pageRoutes(directory = dashboardDirectory()): RouteSpec[] {
  const files = loadFiles(directory)
  const index = files.get('index.html') as PageFile
  return [
    defineRoute({
      method: 'get',
      path: '/dashboard',
      operationId: 'dashboard',
      summary: 'The operator dashboard (HTML). `/dashboard` redirects to `/dashboard/`. Sign in there with an admin key.',
      auth: 'none',
      responses: {
        200: { description: 'The page.', contentType: 'text/html' },
        302: { description: 'From `/dashboard` to `/dashboard/`.' },
      },
      handler({ req, res }) {
        if (!req.path.endsWith('/')) {
          res.setHeader('cache-control', 'no-cache')
          res.redirect(302, 'dashboard/')
          return
        }
        send(index, req, res)
      },
    }),
    defineRoute({
      method: 'get',
      path: '/dashboard/:file',
      operationId: 'dashboardFile',
      summary: "The dashboard's files: `app.js`, `style.css`, `favicon.svg`.",
      auth: 'none',
      params: z.object({ file: z.string().describe('app.js, style.css, favicon.svg or index.html') }),
      responses: {
        200: { description: 'The file.', contentType: 'text/plain' },
        304: { description: 'Not modified (ETag).' },
        404: { description: 'KEYROT_ROUTE_NOT_FOUND: not a file of the dashboard.', schema: errorSchema },
      },
      handler({ req, res, params }) {
        const file = files.get(params.file)
        if (!file) {
          // The same answer as the server's catch-all 404.
          res.status(404).json({ error: { code: 'KEYROT_ROUTE_NOT_FOUND', message: `No route ${req.method} ${req.path}.` } })
          return
        }
        send(file, req, res)
      },
    }),
  ]
}
