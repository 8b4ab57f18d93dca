import { silentLogger, type Clock, type InvalidationEvent } from '@keyrot/core'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { InvalidationFeed, keyMessage, parseFeedMessage, type FeedTransport } from './invalidation.js'

/** A transport that records publishes and lets the test deliver (or lose) messages. */
class FakeTransport implements FeedTransport {
  published: string[] = []
  resubscribes = 0
  echo = true
  onMessage: (message: string) => void = () => {}
  onReconnect: (reason: string) => void = () => {}
  start(onMessage: (message: string) => void, onReconnect: (reason: string) => void): void {
    this.onMessage = onMessage
    this.onReconnect = onReconnect
  }
  ready(): Promise<void> {
    return Promise.resolve()
  }
  resubscribe(): void {
    this.resubscribes++
  }
  async publish(message: string): Promise<void> {
    this.published.push(message)
    if (this.echo) queueMicrotask(() => this.onMessage(message))
  }
  async close(): Promise<void> {}
}

describe('parseFeedMessage', () => {
  it('reads key messages with their send time and ignores anything malformed', () => {
    expect(parseFeedMessage(keyMessage('AbCdEfGhIj012345', 1_700_000_000_000))).toEqual({ type: 'key', keyId: 'AbCdEfGhIj012345', sentAt: 1_700_000_000_000 })
    expect(parseFeedMessage('k|AbCdEfGhIj012345|soon')).toEqual({ type: 'key', keyId: 'AbCdEfGhIj012345', sentAt: undefined })
    for (const junk of ['', 'k', 'k|short|1', 'k|AbCdEfGhIj012345|1|extra', 'x|a|1', 'h|sender|nan', 'k|AbCdEfGhIj01234!|1']) {
      expect(parseFeedMessage(junk)).toBeNull()
    }
  })
})

describe('InvalidationFeed', () => {
  let transport: FakeTransport
  let feed: InvalidationFeed
  let events: InvalidationEvent[]

  beforeEach(() => {
    vi.useFakeTimers()
    transport = new FakeTransport()
    // Date is faked along with the timers.
    const clock: Clock = { now: () => Date.now() }
    feed = new InvalidationFeed({ transport, heartbeatIntervalMs: 1_000, heartbeatTimeoutMs: 3_000, clock, logger: silentLogger })
    events = []
    feed.subscribe((event) => events.push(event))
  })

  afterEach(async () => {
    await feed.close()
    vi.useRealTimers()
  })

  async function tick(ms: number): Promise<void> {
    await vi.advanceTimersByTimeAsync(ms)
  }

  it('hands key messages to listeners with their send time', () => {
    transport.onMessage(keyMessage('AbCdEfGhIj012345', 42))
    expect(events).toEqual([{ type: 'key', keyId: 'AbCdEfGhIj012345', sentAt: 42 }])
  })

  it('publishes a heartbeat every interval and stays quiet while they come back', async () => {
    await tick(10_000)
    expect(transport.published).toHaveLength(10)
    expect(events).toEqual([])
    expect(feed.healthy).toBe(true)
  })

  it('resets once when heartbeats stop coming back, resubscribes, and resets again when they return', async () => {
    await tick(2_000)
    transport.echo = false
    await tick(3_000)
    expect(events).toEqual([])
    await tick(1_000)
    expect(events).toEqual([{ type: 'reset', reason: 'invalidation heartbeat missed' }])
    expect(transport.resubscribes).toBe(1)
    await tick(10_000)
    expect(events).toHaveLength(1)
    transport.echo = true
    await tick(1_000)
    expect(events).toEqual([
      { type: 'reset', reason: 'invalidation heartbeat missed' },
      { type: 'reset', reason: 'invalidation feed recovered after missed heartbeats' },
    ])
    expect(feed.healthy).toBe(true)
  })

  it('ignores heartbeats of other stores', async () => {
    transport.echo = false
    transport.onMessage('h|someone-else|1')
    await tick(4_000)
    expect(events).toEqual([{ type: 'reset', reason: 'invalidation heartbeat missed' }])
  })

  it('passes a transport reconnect on as a reset', () => {
    transport.onReconnect('invalidation subscriber reconnected')
    expect(events).toEqual([{ type: 'reset', reason: 'invalidation subscriber reconnected' }])
  })

  it('keeps calling other listeners when one throws, and stops after close', async () => {
    const second: InvalidationEvent[] = []
    feed.subscribe(() => {
      throw new Error('listener bug')
    })
    feed.subscribe((event) => second.push(event))
    transport.onMessage(keyMessage('AbCdEfGhIj012345', 1))
    expect(second).toHaveLength(1)
    await feed.close()
    const published = transport.published.length
    await tick(5_000)
    expect(transport.published).toHaveLength(published)
  })
})
