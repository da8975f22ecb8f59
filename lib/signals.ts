/**
 * lib/signals.ts — graceful shutdown on Ctrl+C (SIGINT) or `kill` (SIGTERM).
 *
 * The first signal starts a graceful shutdown (the caller tells clients, flushes, closes); a second one
 * means "now": the process exits at once with 128 + the signal's number, as a shell reports it.
 */
const SIGNAL_NUMBERS = { SIGINT: 2, SIGTERM: 15 } as const;
type ShutdownSignal = keyof typeof SIGNAL_NUMBERS;

/** Resolves with the name of the first SIGINT or SIGTERM received. */
export function waitForShutdownSignal(): Promise<ShutdownSignal> {
  return new Promise((resolve) => {
    let received = false;
    for (const signal of Object.keys(SIGNAL_NUMBERS) as ShutdownSignal[]) {
      process.on(signal, () => {
        if (received) process.exit(128 + SIGNAL_NUMBERS[signal]);
        received = true;
        resolve(signal);
      });
    }
  });
}
