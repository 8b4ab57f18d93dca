/**
 * The child's half of the worker protocol: read the config from `argv[2]`,
 * report over IPC, and exit when the parent goes away (no orphans).
 */

export function workerConfig<T>(): T {
  const raw = process.argv[2]
  if (raw === undefined) throw new Error('this script is started by the benchmark runner (bench/dist/run.js)')
  return JSON.parse(raw) as T
}

function send(message: { type: string; data?: unknown; message?: string }): Promise<void> {
  return new Promise((resolve) => {
    if (!process.send) {
      console.log(JSON.stringify(message))
      resolve()
      return
    }
    process.send(message, undefined, {}, () => resolve())
  })
}

export function sendReady(data: unknown): Promise<void> {
  return send({ type: 'ready', data })
}

/** Runs a measurement, sends its result (or the error) and exits. */
export function measure(work: () => Promise<unknown>): void {
  process.on('disconnect', () => process.exit(0))
  work().then(
    async (data) => {
      await send({ type: 'result', data })
      process.exit(0)
    },
    async (error: unknown) => {
      await send({ type: 'error', message: error instanceof Error ? (error.stack ?? error.message) : String(error) })
      process.exit(1)
    },
  )
}

/** For serving workers: exit when the parent disconnects or asks to stop. */
export function exitWithParent(cleanup: () => Promise<void> = async () => {}): void {
  const stop = () => {
    const timer = setTimeout(() => process.exit(0), 2_000)
    timer.unref()
    cleanup().finally(() => process.exit(0))
  }
  process.on('disconnect', stop)
  process.on('SIGTERM', stop)
}

export function reportFailure(error: unknown): void {
  void send({ type: 'error', message: error instanceof Error ? (error.stack ?? error.message) : String(error) }).then(() => process.exit(1))
}

/** For serving workers: answers the parent's `ask()` with `answer(question)`. */
export function answerQuestions(answer: (question: unknown) => unknown): void {
  process.on('message', (message: { question?: unknown }) => {
    if (message && typeof message === 'object' && 'question' in message) {
      void Promise.resolve()
        .then(() => answer(message.question))
        .then(
          (data) => send({ type: 'reply', data }),
          (error: unknown) => send({ type: 'error', message: error instanceof Error ? error.message : String(error) }),
        )
    }
  })
}
