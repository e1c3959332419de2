// The service worker's source, imported as text (bundled into the compiled binary) and served as is.
declare module '*/sw.js' {
  const text: string
  export default text
}
