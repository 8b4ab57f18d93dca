import type { KeyStore } from '@keyrot/core'

/**
 * Wraps a store so a test can make `get()` fail, as a store does when its
 * backend is down. Everything else passes through.
 */
export class FlakyStore implements KeyStore {
  /** What `get()` rejects with; `null` while the store works. */
  failure: Error | null = null

  constructor(private readonly inner: KeyStore) {}

  get(keyId: string): ReturnType<KeyStore['get']> {
    return this.failure ? Promise.reject(this.failure) : this.inner.get(keyId)
  }
  insert(...args: Parameters<KeyStore['insert']>) {
    return this.inner.insert(...args)
  }
  rotate(...args: Parameters<KeyStore['rotate']>) {
    return this.inner.rotate(...args)
  }
  revoke(...args: Parameters<KeyStore['revoke']>) {
    return this.inner.revoke(...args)
  }
  emergencyRotate(...args: Parameters<KeyStore['emergencyRotate']>) {
    return this.inner.emergencyRotate(...args)
  }
  setExpiry(...args: Parameters<KeyStore['setExpiry']>) {
    return this.inner.setExpiry(...args)
  }
  updateHash(...args: Parameters<KeyStore['updateHash']>) {
    return this.inner.updateHash(...args)
  }
  recordUsage(...args: Parameters<KeyStore['recordUsage']>) {
    this.inner.recordUsage(...args)
  }
  list(...args: Parameters<KeyStore['list']>) {
    return this.inner.list(...args)
  }
  close() {
    return this.inner.close()
  }
}
