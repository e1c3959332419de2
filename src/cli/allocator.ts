/**
 * Bun allocates with mimalloc, which hands freed memory back to the OS 10 ms after it is freed. A server that
 * streams request bodies frees and allocates large buffers all the time, so it page-faulted the same memory
 * in again and again: with four concurrent 10 MiB uploads, perf put 35 % of the event loop in page faults and
 * the copies that took them, and the server used 44–47 ms of CPU per upload, against 29–32 ms with purging
 * off. Memory then stays with the process once used and is reused from there: resident memory follows the
 * peak rather than the moment.
 *
 * mimalloc reads its options from the environment once, as the process starts, so the server sets the
 * option and replaces itself with the same command (execve: the same pid, nothing started yet). An
 * operator's own MIMALLOC_PURGE_DELAY is left as it is.
 */
export function withAllocatorTuned(): void {
  if (process.env.MIMALLOC_PURGE_DELAY || typeof process.execve !== 'function') return
  // A compiled binary's argv is ["bun", "/$bunfs/root/<name>", ...args]: the binary itself takes the args.
  const compiled = Bun.main.startsWith('/$bunfs/')
  const args = compiled ? process.argv.slice(2) : [...process.execArgv, ...process.argv.slice(1)]
  process.execve(process.execPath, [process.execPath, ...args], { ...process.env, MIMALLOC_PURGE_DELAY: '-1' })
}
