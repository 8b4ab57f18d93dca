// A Standard Webhooks receiver in plain Node: node:http and node:crypto, no
// dependencies, to show that a keyrot sender needs nothing keyrot-specific on
// the receiving side.
//
//   WEBHOOK_SECRETS="whsec_old...,whsec_new..." PORT=3000 node examples/webhook-receiver/receiver.mjs
//
// List both secrets while the sender rotates (or either one: during the grace
// period the sender signs with both), then only the new one.
import { createHmac, timingSafeEqual } from 'node:crypto'
import http from 'node:http'
import { pathToFileURL } from 'node:url'

const TOLERANCE_SECONDS = 5 * 60
const MAX_BODY_BYTES = 1024 * 1024

/** The HMAC key bytes of a `whsec_<base64>` secret. */
function keyOf(secret) {
  const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64')
  if (key.length < 24) throw new TypeError('each webhook secret must be whsec_ and the base64 of at least 24 bytes')
  return key
}

/**
 * Checks one delivery. `body` is the raw body (a Buffer): verify the bytes as
 * received, before any JSON parsing.
 */
export function verifyDelivery(keys, headers, body, nowSeconds = Math.floor(Date.now() / 1000)) {
  const id = headers['webhook-id']
  const timestamp = headers['webhook-timestamp']
  const signatures = headers['webhook-signature']
  if (typeof id !== 'string' || typeof timestamp !== 'string' || typeof signatures !== 'string') return { ok: false, reason: 'missing headers' }
  if (!/^\d+$/.test(timestamp) || Math.abs(nowSeconds - Number(timestamp)) > TOLERANCE_SECONDS) return { ok: false, reason: 'stale timestamp' }
  const sent = signatures
    .split(' ')
    .filter((entry) => entry.startsWith('v1,'))
    .map((entry) => Buffer.from(entry.slice(3), 'base64'))
  for (const key of keys) {
    const expected = createHmac('sha256', key).update(`${id}.${timestamp}.`).update(body).digest()
    if (sent.some((signature) => signature.length === expected.length && timingSafeEqual(signature, expected))) return { ok: true, id }
  }
  return { ok: false, reason: 'no matching signature' }
}

/**
 * An HTTP server that accepts signed deliveries on any path, answers 204, and
 * hands each new message to `onMessage` once (senders retry with the same
 * `webhook-id`, so it deduplicates on it).
 */
export function createReceiver({ secrets, onMessage = () => {}, now = () => Math.floor(Date.now() / 1000) }) {
  const keys = secrets.map(keyOf)
  const seen = new Set()
  return http.createServer((req, res) => {
    if (req.method !== 'POST') return res.writeHead(405).end()
    const chunks = []
    let size = 0
    req.on('data', (chunk) => {
      size += chunk.length
      if (size > MAX_BODY_BYTES) {
        res.writeHead(413).end()
        req.destroy()
      } else chunks.push(chunk)
    })
    req.on('end', () => {
      const body = Buffer.concat(chunks)
      const result = verifyDelivery(keys, req.headers, body, now())
      if (!result.ok) return res.writeHead(400, { 'content-type': 'text/plain' }).end(result.reason)
      if (!seen.has(result.id)) {
        if (seen.size >= 10_000) seen.delete(seen.values().next().value)
        seen.add(result.id)
        onMessage(JSON.parse(body.toString('utf8')), result.id)
      }
      res.writeHead(204).end()
    })
  })
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const secrets = (process.env.WEBHOOK_SECRETS ?? '').split(',').filter(Boolean)
  if (secrets.length === 0) {
    console.error('Set WEBHOOK_SECRETS to one or more whsec_... secrets, comma-separated.')
    process.exit(1)
  }
  const port = Number(process.env.PORT ?? 3000)
  createReceiver({ secrets, onMessage: (message, id) => console.log(`webhook ${id}:`, message) }).listen(port, '127.0.0.1', () =>
    console.log(`webhook receiver on http://127.0.0.1:${port}`),
  )
}
