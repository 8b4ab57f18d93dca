import type { Readable } from 'node:stream'
import { InvalidRequestError, type KeyrotError } from '../errors.js'
import { PayloadTooLargeError } from './errors.js'

/** A request body stream as Node gives it (`http.IncomingMessage`), with its headers. */
export type BodyStream = Readable & { headers?: Record<string, string | string[] | undefined> }

/**
 * Reads a request body into one Buffer, refusing more than `limit` bytes
 * with `PayloadTooLargeError` (before reading anything when `Content-Length`
 * already says so). The stream is paused, never destroyed, on refusal, so
 * the caller can still answer 413 (Node discards the unread rest).
 */
export function readRawBody(stream: BodyStream, limit: number): Promise<Buffer> {
  const declared = stream.headers?.['content-length']
  if (typeof declared === 'string' && declared !== '') {
    if (!/^\d+$/.test(declared)) return Promise.reject(new InvalidRequestError('The Content-Length header is malformed.'))
    if (Number(declared) > limit) return Promise.reject(new PayloadTooLargeError(limit))
  }
  if (stream.readableEnded) return Promise.resolve(Buffer.alloc(0))
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let length = 0
    const cleanup = (): void => {
      stream.off('data', onData)
      stream.off('end', onEnd)
      stream.off('error', onError)
      stream.off('close', onClose)
    }
    const fail = (error: KeyrotError | Error): void => {
      cleanup()
      stream.pause()
      reject(error)
    }
    const onData = (chunk: Buffer | string): void => {
      const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk
      length += bytes.length
      if (length > limit) return fail(new PayloadTooLargeError(limit))
      chunks.push(bytes)
    }
    const onEnd = (): void => {
      cleanup()
      resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, length))
    }
    // A client that aborts its upload is a bad request, not a server error (Node reports it as `Error: aborted`).
    const onError = (error: Error): void => fail(Object.assign(new InvalidRequestError('The request body was cut off.'), { cause: error }))
    const onClose = (): void => {
      if (!stream.readableEnded) fail(new InvalidRequestError('The request body was cut off.'))
    }
    stream.on('data', onData)
    stream.once('end', onEnd)
    stream.once('error', onError)
    stream.once('close', onClose)
  })
}
