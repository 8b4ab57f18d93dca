// require() creates a key and verifies it; the Express middleware loads from the CommonJS build.
const { createKeyring, MemoryStore, Argon2Hasher, parseToken } = require('@keyrot/core')
const { apiKeyAuth } = require('@keyrot/express')

async function main() {
  const keyring = createKeyring({ store: new MemoryStore() })
  const { token, key } = await keyring.create({ tenantId: 'acme', name: 'cjs' })
  const good = await keyring.verify(token)
  const bad = await keyring.verify(token.slice(0, -1) + (token.endsWith('A') ? 'B' : 'A'))
  await keyring.close()
  console.log(JSON.stringify({
    resolved: [require.resolve('@keyrot/core'), require.resolve('@keyrot/express')],
    parsedId: parseToken(token).keyId,
    keyId: key.id,
    good: good.ok && good.key.id,
    bad: bad.ok ? 'accepted' : bad.error.code,
    defaultHasher: keyring.options.hasher instanceof Argon2Hasher,
    middleware: typeof apiKeyAuth({ keyring }),
  }))
}
main().catch((error) => {
  console.error(error)
  process.exit(1)
})
