#!/usr/bin/env node
// Revokes a key WITHOUT awaiting it, closes the keyring at once, and exits:
// the shutdown a hurried operator script or a SIGTERM handler performs.
// Runs the BUILT packages. Environment: REDIS_URL, KEY_ID (the key to revoke).
// Exit 0 once close() resolved; an unhandled rejection (the revoke failing on
// a closed store) would end the process with code 1.
import { createKeyring } from '@keyrot/core'
import { RedisStore } from '@keyrot/redis'
import { Redis } from 'ioredis'

const client = new Redis(process.env.REDIS_URL, { lazyConnect: true })
client.on('error', () => {})
const store = new RedisStore({ client })
await store.waitUntilReady(10_000)
const keyring = createKeyring({ store, rateLimit: false })
void keyring.revoke(process.env.KEY_ID, { reason: 'revoked during shutdown' })
await keyring.close()
process.stdout.write(`${JSON.stringify({ event: 'closed' })}\n`)
process.exit(0)
