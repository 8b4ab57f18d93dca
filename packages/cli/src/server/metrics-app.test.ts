import { describe, expect, it } from 'vitest'
import { parseListenAddress } from './metrics-app.js'

describe('parseListenAddress (--metrics-listen)', () => {
  it('reads host:port, [ipv6]:port and off', () => {
    expect(parseListenAddress('127.0.0.1:9464')).toEqual({ host: '127.0.0.1', port: 9464 })
    expect(parseListenAddress('[::1]:0')).toEqual({ host: '::1', port: 0 })
    expect(parseListenAddress('localhost:9090')).toEqual({ host: 'localhost', port: 9090 })
    expect(parseListenAddress('off')).toBeNull()
  })

  it('refuses anything else, naming the expected form', () => {
    for (const value of ['9464', ':9464', '127.0.0.1', '127.0.0.1:65536', '127.0.0.1:-1', '::1:9464', 'host:port', '', 'OFF']) {
      expect(() => parseListenAddress(value), value).toThrow(/host:port/)
    }
  })
})
