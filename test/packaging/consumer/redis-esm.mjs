// Creates a key in Redis through @keyrot/redis imported as ESM and verifies it.
// REDIS_URL: the test's own redis-server; KEY_PREFIX: the store's key prefix (empty: the default).
import { createKeyring } from '@keyrot/core'
import { RedisStore } from '@keyrot/redis'
import { Redis } from 'ioredis'
import { fileURLToPath } from 'node:url'

const client = new Redis(process.env.REDIS_URL, { lazyConnect: true })
const store = new RedisStore({ client, keyPrefix: process.env.KEY_PREFIX || undefined })
const keyring = createKeyring({ store })
try {
  await store.waitUntilReady()
  const { token, key } = await keyring.create({ tenantId: 'acme', name: 'redis-esm', scopes: ['read'] })
  const verified = await keyring.verify(token, { scopes: ['read'] })
  console.log(JSON.stringify({
    resolved: fileURLToPath(import.meta.resolve('@keyrot/redis')),
    token,
    keyId: key.id,
    verified: verified.ok ? verified.key.id : verified.error.code,
  }))
} finally {
  await keyring.close()
  client.disconnect()
}
