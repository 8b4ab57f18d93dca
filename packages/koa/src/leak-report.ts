import { KeyrotError, leakErrorResponse, readRawBody, type LeakReportHandler, type LeakReportResponse } from '@keyrot/core'
import type { Context, Middleware } from 'koa'

/**
 * Mounts a leak-report handler (`createLeakReportHandler()` in
 * `@keyrot/core`) as Koa middleware for one route, exactly as the Express
 * adapter does: raw body (refused over `maxBodyBytes` before reading),
 * headers, answer. Mount it where no body parser ran before it.
 *
 * @example
 * const github = createLeakReportHandler({ keyring, provider: 'github' })
 * router.post('/v1/leak-reports/github', leakReportRoute(github))
 */
export function leakReportRoute(handler: LeakReportHandler): Middleware {
  return async function keyrotLeakReport(ctx: Context) {
    let answer: LeakReportResponse
    const kept = (ctx.request as { rawBody?: unknown }).rawBody
    if (Buffer.isBuffer(kept)) {
      answer = await handler.handle({ headers: ctx.headers, body: kept })
    } else if (ctx.req.readableEnded) {
      throw new TypeError('leakReportRoute() needs the raw body, but a body parser already consumed it: mount it before the body parser')
    } else {
      let body: Buffer | undefined
      try {
        body = await readRawBody(ctx.req, handler.maxBodyBytes)
      } catch (error) {
        if (!(error instanceof KeyrotError)) throw error
        answer = leakErrorResponse(error)
      }
      answer ??= await handler.handle({ headers: ctx.headers, body: body as Buffer })
    }
    ctx.status = answer.status
    ctx.set(answer.headers)
    ctx.body = answer.body
  }
}
