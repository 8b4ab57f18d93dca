// Verifies a key that another process wrote to Redis (TOKEN), through @keyrot/redis loaded
// with require(), then revokes it and verifies again.
// REDIS_URL: the test's own redis-server; KEY_PREFIX: the store's key prefix (empty: the default).
const { createKeyring } = require('@keyrot/core')
const { RedisStore } = require('@keyrot/redis')
const Redis = require('ioredis')

async function main() {
  const client = new Redis(process.env.REDIS_URL, { lazyConnect: true })
  const store = new RedisStore({ client, keyPrefix: process.env.KEY_PREFIX || undefined })
  const keyring = createKeyring({ store })
  try {
    await store.waitUntilReady()
    const before = await keyring.verify(process.env.TOKEN)
    if (!before.ok) throw new Error('the token was refused before the revocation: ' + before.error.code)
    await keyring.revoke(before.key.id, { reason: 'packaging test' })
    const after = await keyring.verify(process.env.TOKEN)
    console.log(JSON.stringify({
      resolved: require.resolve('@keyrot/redis'),
      verified: { id: before.key.id, tenantId: before.key.tenantId, scopes: before.key.scopes },
      afterRevoke: after.ok ? 'accepted' : after.error.code,
    }))
  } finally {
    await keyring.close()
    client.disconnect()
  }
}
main().catch((error) => {
  console.error(error)
  process.exit(1)
})
