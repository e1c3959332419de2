/**
 * The new password: typed at a terminal (not echoed), or the first line of stdin when piped
 * (`printf '%s\n' "$PW" | chat-server user create alice`). Never an argument or a variable, which other
 * local users can read in the process list.
 */
export async function readPassword(): Promise<string> {
  if (!process.stdin.isTTY) {
    const text = await new Response(Bun.stdin.stream()).text()
    return text.split(/\r?\n/)[0] ?? ''
  }
  process.stderr.write('Password: ')
  process.stdin.setRawMode(true)
  return new Promise((resolve) => {
    let typed = ''
    const onData = (chunk: Buffer) => {
      for (const char of chunk.toString('utf8')) {
        if (char === '\r' || char === '\n') {
          process.stdin.setRawMode(false)
          process.stdin.off('data', onData)
          process.stdin.pause()
          process.stderr.write('\n')
          return resolve(typed)
        }
        if (char === '\u0003') process.exit(130)
        typed = char === '\u007f' ? [...typed].slice(0, -1).join('') : typed + char
      }
    }
    process.stdin.on('data', onData)
    process.stdin.resume()
  })
}
