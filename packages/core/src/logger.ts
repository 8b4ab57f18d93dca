/** The subset of pino's interface keyrot logs through: `(fields, message)`. */
export interface Logger {
  debug?(obj: object, msg?: string): void
  info(obj: object, msg?: string): void
  warn(obj: object, msg?: string): void
  error(obj: object, msg?: string): void
}

export const silentLogger: Logger = { info() {}, warn() {}, error() {}, debug() {} }

/** Serialises an error for a log line without anything but its code, name and message. */
export function errorFields(error: unknown): { err: { name: string; message: string; code?: string } } {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code
    return { err: { name: error.name, message: error.message, ...(typeof code === 'string' ? { code } : {}) } }
  }
  return { err: { name: 'Error', message: String(error) } }
}
