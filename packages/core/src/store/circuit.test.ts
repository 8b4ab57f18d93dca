import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { ManualClock } from '../clock.js'
import { InvalidInputError, StoreUnavailableError } from '../errors.js'
import { Circuit } from './circuit.js'

const fast = () => new StoreUnavailableError('circuit open')

function setup(probe: () => Promise<unknown>) {
  const clock = new ManualClock()
  const log: string[] = []
  const circuit = new Circuit({
    clock,
    probe,
    probeIntervalMs: 250,
    isOutage: (error) => error instanceof StoreUnavailableError,
    onOpen: (error, at) => log.push(`open ${(error as Error).message} at ${at}`),
    onClose: (downtimeMs) => log.push(`closed after ${downtimeMs} ms`),
  })
  return { clock, circuit, log }
}

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] })
})
afterEach(() => {
  vi.useRealTimers()
})

describe('Circuit', () => {
  it('opens once on an outage, then fails at once without calling the dependency', async () => {
    const { circuit, log } = setup(() => Promise.reject(new Error('still down')))
    await expect(circuit.run(() => Promise.reject(new StoreUnavailableError('timed out')), fast)).rejects.toThrow('timed out')
    let called = 0
    for (let i = 0; i < 10; i++) {
      await expect(
        circuit.run(async () => {
          called++
        }, fast),
      ).rejects.toThrow('circuit open')
    }
    circuit.fail(new StoreUnavailableError('another'))
    expect(called).toBe(0)
    expect(circuit.open).toBe(true)
    expect(circuit.outages).toBe(1)
    expect(log).toEqual([`open timed out at ${new ManualClock().now()}`])
    circuit.close()
  })

  it('does not open on an answer that is a refusal rather than an outage', async () => {
    const { circuit } = setup(() => Promise.resolve())
    await expect(circuit.run(() => Promise.reject(new InvalidInputError('keyId', 'bad')), fast)).rejects.toThrow('bad')
    expect(circuit.open).toBe(false)
    expect(await circuit.run(async () => 'answered', fast)).toBe('answered')
  })

  it('probes every interval, one probe at a time, and closes when one succeeds', async () => {
    let up = false
    let probes = 0
    let release: () => void = () => {}
    const { clock, circuit, log } = setup(() => {
      probes++
      if (!up) return Promise.reject(new Error('down'))
      // A slow probe: no second probe starts while it is in flight.
      return new Promise<void>((resolve) => (release = resolve))
    })
    circuit.fail(new StoreUnavailableError('down'))
    await vi.advanceTimersByTimeAsync(1_000)
    expect(probes).toBe(4)
    up = true
    clock.advance(3_000)
    await vi.advanceTimersByTimeAsync(1_000)
    expect(probes).toBe(5)
    expect(circuit.open).toBe(true)
    release()
    await vi.advanceTimersByTimeAsync(0)
    expect(circuit.open).toBe(false)
    expect(log.at(-1)).toBe('closed after 3000 ms')
    await vi.advanceTimersByTimeAsync(1_000)
    expect(probes).toBe(5)
    expect(vi.getTimerCount()).toBe(0)
  })

  it('stops probing on close()', async () => {
    let probes = 0
    const { circuit } = setup(() => {
      probes++
      return Promise.reject(new Error('down'))
    })
    circuit.fail(new StoreUnavailableError('down'))
    circuit.close()
    await vi.advanceTimersByTimeAsync(1_000)
    expect(probes).toBe(0)
    expect(vi.getTimerCount()).toBe(0)
    circuit.fail(new StoreUnavailableError('down'))
    expect(circuit.open).toBe(false)
  })

  it('refuses a probe interval that is not positive', () => {
    expect(() => new Circuit({ clock: new ManualClock(), probe: async () => {}, isOutage: () => true, probeIntervalMs: 0 })).toThrow(TypeError)
  })
})
