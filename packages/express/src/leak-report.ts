import { asKeyrotError, KeyrotError, leakErrorResponse, readRawBody, type LeakReportHandler, type LeakReportResponse } from '@keyrot/core'
import type { NextFunction, Request, RequestHandler, Response } from 'express'

/**
 * Mounts a leak-report handler (`createLeakReportHandler()` in
 * `@keyrot/core`) as an Express route: it reads the raw body (refusing one
 * over the handler's `maxBodyBytes` from `Content-Length` before reading),
 * hands it over with the headers and sends the answer. Mount it before any
 * JSON body parser: the signature covers the exact bytes. Needs no API key:
 * the provider's signature is the authentication.
 *
 * @example
 * const github = createLeakReportHandler({ keyring, provider: 'github' })
 * app.post('/v1/leak-reports/github', leakReportRoute(github))
 */
export function leakReportRoute(handler: LeakReportHandler): RequestHandler {
  return async function keyrotLeakReport(req: Request, res: Response, next: NextFunction) {
    let answer: LeakReportResponse
    try {
      let body: Buffer
      if (Buffer.isBuffer(req.body)) body = req.body
      else if (req.readableEnded) throw new TypeError('leakReportRoute() needs the raw body, but a body parser already consumed it: mount it before express.json(), or use express.raw()')
      else {
        try {
          body = await readRawBody(req, handler.maxBodyBytes)
        } catch (error) {
          if (!(error instanceof KeyrotError)) throw error
          answer = leakErrorResponse(asKeyrotError(error))
          res.status(answer.status).set(answer.headers).json(answer.body)
          return
        }
      }
      answer = await handler.handle({ headers: req.headers, body })
      res.status(answer.status).set(answer.headers).json(answer.body)
    } catch (error) {
      next(error)
    }
  }
}
