import { MemoryStore } from '@keyrot/core'
import { describeStoreContract } from './store-contract.js'

describeStoreContract('MemoryStore', async () => {
  const store = new MemoryStore()
  // MemoryStore counts usage synchronously: the same instance reads it back.
  return { store, reopen: async () => store }
})
